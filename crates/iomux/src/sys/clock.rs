//! Reads of the monotonic clock for the selector's deadlines: the precise clock, and the coarse one
//! (the time of the last tick, read from the vDSO page without touching the hardware counter), which is
//! about six times cheaper here and is all a deadline that is only consulted after a signal needs. Part
//! of the OS boundary (`sys`).

use std::sync::OnceLock;
use std::time::Duration;

fn read(clock: libc::clockid_t) -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a live, writable timespec; both clock ids exist on every Linux since 2.6.32.
    let result = unsafe { libc::clock_gettime(clock, &mut now) };
    debug_assert_eq!(
        result, 0,
        "clock_gettime cannot fail for a valid clock and pointer"
    );
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// `CLOCK_MONOTONIC` (what `Instant` reads), as the time since an unspecified start.
pub(crate) fn now() -> Duration {
    read(libc::CLOCK_MONOTONIC)
}

/// A time on `now()`'s scale that is no later than `now()` and, by at most [`coarse_lag`], earlier.
pub(crate) fn coarse_now() -> Duration {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return read(libc::CLOCK_MONOTONIC_COARSE);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    return now();
}

/// How far [`coarse_now`] may lag behind [`now`]: the coarse clock advances once per tick, and a CPU
/// leaving idle catches the tick up before user code runs on it. Twice the resolution, for margin.
pub(crate) fn coarse_lag() -> Duration {
    static LAG: OnceLock<Duration> = OnceLock::new();
    *LAG.get_or_init(|| {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let mut resolution = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `resolution` is a live, writable timespec for clock_getres to fill.
            let result =
                unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut resolution) };
            if result == 0 {
                return 2 * Duration::new(resolution.tv_sec as u64, resolution.tv_nsec as u32);
            }
            // Unknown: assume the slowest tick Linux is built with (100 Hz).
            Duration::from_millis(20)
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        Duration::ZERO
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_clock_is_behind_by_at_most_its_lag() {
        for _ in 0..1000 {
            let coarse = coarse_now();
            let precise = now();
            assert!(coarse <= precise);
            assert!(precise - coarse <= coarse_lag() + Duration::from_millis(50));
        }
    }
}
