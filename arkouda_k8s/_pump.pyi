# Types of the native pump built from _pump.c.
from typing import Any

class Pump:
    @property
    def pongs(self) -> int: ...
    def run(
        self,
        sslobj: Any,
        remote_fd: int,
        local_fd: int,
        data_stream: int,
        error_stream: int,
        inbound: bytes,
        outbound: bytes,
        local_eof: bool,
        /,
    ) -> tuple[str, str]: ...
    def stop(self) -> None: ...
    def ping(self) -> None: ...

def compatible(ssl_module_path: str, /) -> bool: ...
