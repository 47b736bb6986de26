"""A tiny TCP server for the data path tests: ``python netns_tcp_server.py PORT...`` answers
``hello <port>`` on each connection, and prints ``listening`` once every port is bound."""
import socket
import sys
import threading


def serve(sock: socket.socket, port: int) -> None:
    while True:
        conn, _ = sock.accept()
        try:
            conn.sendall(f"hello {port}\n".encode())
        finally:
            conn.close()


def main() -> None:
    threads = []
    for port in map(int, sys.argv[1:]):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        sock.listen(16)
        threads.append(threading.Thread(target=serve, args=(sock, port), daemon=True))
    for t in threads:
        t.start()
    print("listening", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
