"""The seeds' `selectors` callback server (seeds/002, section 二), the Python peer of `iomux echo`.

The seeds' code as written, with only the changes the benchmark needs, each marked BENCH:
- the reply is a plain echo (the seeds sent `data.upper()+b'_SB'`);
- the listen backlog is SOMAXCONN (the seeds had 5);
- the port comes from the first argument (the seeds' 8088 stays the default; 0 picks a free port) and the
  bound address is printed as the first stdout line, `selectors echo: listening on tcp://ADDR:PORT`.
Everything else (recv(1024), send() without checking the count, the prints) is the seeds'.

Usage: python3 selectors_echo.py [PORT]
"""

from socket import *
import selectors
import sys

sel=selectors.DefaultSelector()
def accept(server_fileobj,mask):
    conn,addr=server_fileobj.accept()
    sel.register(conn,selectors.EVENT_READ,read)

def read(conn,mask):
    try:
        data=conn.recv(1024)
        if not data:
            print('closing',conn)
            sel.unregister(conn)
            conn.close()
            return
        conn.send(data)  # BENCH: plain echo (seeds: data.upper()+b'_SB')
    except Exception:
        print('closing', conn)
        sel.unregister(conn)
        conn.close()



port=int(sys.argv[1]) if len(sys.argv)>1 else 8088  # BENCH: port argument, 0 picks a free one
server_fileobj=socket(AF_INET,SOCK_STREAM)
server_fileobj.setsockopt(SOL_SOCKET,SO_REUSEADDR,1)
server_fileobj.bind(('127.0.0.1',port))
server_fileobj.listen(SOMAXCONN)  # BENCH: backlog SOMAXCONN (seeds: 5)
server_fileobj.setblocking(False) #设置socket的接口为非阻塞
sel.register(server_fileobj,selectors.EVENT_READ,accept) #相当于网select的读列表里append了一个文件句柄
                                                         #server_fileobj,并且绑定了一个回调函数accept
host,bound_port=server_fileobj.getsockname()  # BENCH: report the bound address
print('selectors echo: listening on tcp://%s:%d' % (host,bound_port), flush=True)

while True:
    events=sel.select() #检测所有的fileobj，是否有完成wait data的
    for sel_obj,mask in events:
        callback=sel_obj.data #callback=accpet
        callback(sel_obj.fileobj,mask) #accpet(server_fileobj,1)
