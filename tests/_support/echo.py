"""An echo server for a sandbox pod, shared by the port-forward and tunnel tests.

It answers every connection in its own thread and half-closes after the client's EOF,
so a transfer can be checked end to end; it prints "listening" once bound. A connection
whose first bytes are ``RESET`` is reset (RST, not a clean close): a pod's connection
failing mid-stream.
"""

ECHO_PORT = 7000

ECHO = f"""
import os, socket, socketserver, struct
class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        buf = bytearray(1 << 18)
        view = memoryview(buf)
        try:
            n = self.request.recv_into(buf)
            if view[:5] == b"RESET":
                self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.request.close()
                return
            while n:
                self.request.sendall(view[:n])
                n = self.request.recv_into(buf)
            self.request.shutdown(socket.SHUT_WR)
        except OSError:
            pass
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer.daemon_threads = True
server = socketserver.ThreadingTCPServer((os.environ["SANDBOX_POD_IP"], {ECHO_PORT}), Echo)
print("listening", flush=True)
server.serve_forever()
"""
