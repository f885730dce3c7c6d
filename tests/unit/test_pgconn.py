"""pgconn.connect: a connection attempt cut short by Ctrl-C closes its socket at once.

The peer here is a TCP listener that accepts and never answers: a PostgreSQL server still in
authentication looks the same to the client. No database is involved or imitated; what is checked
is the client's socket.
"""

from __future__ import annotations

import signal
import socket
import threading

import pytest

from restorecheck import pgconn


def _silent_server() -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    return srv, srv.getsockname()[1]


def _peer_sees_eof(srv: socket.socket, within: float) -> bool:
    peer, _ = srv.accept()
    peer.settimeout(within)
    try:
        while peer.recv(4096):  # the startup or SSL request, then EOF once the client closed
            pass
        return True
    except TimeoutError:
        return False
    finally:
        peer.close()


def test_an_interrupted_attempt_closes_its_socket_while_the_exception_lives() -> None:
    srv, port = _silent_server()
    main = threading.main_thread().ident or 0
    timer = threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    with srv:
        with pytest.raises(KeyboardInterrupt) as excinfo:
            pgconn.connect(f"host=127.0.0.1 port={port} user=u dbname=d connect_timeout=20 sslmode=disable")
        # the exception (and its traceback) is still alive here, as it is during a run's cleanup
        assert excinfo.value is not None
        assert _peer_sees_eof(srv, within=2.0), "the interrupted attempt kept its socket open"
    timer.join()


def test_every_connection_of_the_package_goes_through_pgconn() -> None:
    """A psycopg.connect elsewhere would bring the interrupted-login wait back (a 60 s cleanup)."""
    from pathlib import Path

    import restorecheck

    root = Path(restorecheck.__file__).parent
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if p.name != "pgconn.py" and "psycopg.connect(" in p.read_text()]
    assert offenders == []
