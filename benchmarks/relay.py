"""A TCP relay that can be cut and restored: a database restart or a network fault, made on demand for tests and faults.py."""

import socket
import threading


class Relay:
    """Forwards 127.0.0.1:port to `target`; `cut` drops every open connection and refuses new ones, `restore` listens again."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = 0
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        """Listen again on the same port: new connections reach the target."""
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def cut(self) -> None:
        """Drop every open connection and refuse new ones."""
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self.lock:
            for end in self.open:
                _close(end)
            self.open.clear()

    def _accept(self, listener: socket.socket) -> None:
        """Pair each accepted connection with one to the target until the listener is cut."""
        while True:
            try:
                client, _ = listener.accept()
                server = socket.create_connection(self.target)
            except OSError:
                return
            with self.lock:
                self.open += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy one direction until either end closes, then close both."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        _close(source)
        _close(sink)


def _close(end: socket.socket) -> None:
    """Shut a socket down whatever its state."""
    try:
        end.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    end.close()
