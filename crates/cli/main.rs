//! The `iomux` command: parses flags, builds a configuration and calls the library.
#![forbid(unsafe_code)]

fn main() {
    println!("iomux");
}
