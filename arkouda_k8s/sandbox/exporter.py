"""Stand-in for the Prometheus Arkouda exporter (not the real one, not Arkouda).

Reads the variables the real exporter reads (arkouda_metrics_exporter/metrics.py, see
image_facts.yaml: ``ARKOUDA_METRICS_SERVICE_HOST``/``_PORT``, ``ARKOUDA_METRICS_SERVER_NAME``,
``METRICS_POLLING_INTERVAL``, ``METRICS_SCRAPE_PORT``) with the same defaults, and
ignores the ones the chart sets but the exporter never reads (``EXPORT_PORT``, ...).
It polls the server's metrics port (a TCP connect) and serves ``/metrics`` in the
Prometheus text format on the scrape port of its pod. Standard library only.
"""

import http.server
import os
import socket
import threading
import time

STAND_IN = "sandbox stand-in for prometheus-arkouda-exporter"


def settings(env):
    return {
        "host": env.get("ARKOUDA_METRICS_SERVICE_HOST", "localhost"),
        "port": int(env.get("ARKOUDA_METRICS_SERVICE_PORT", "5556")),
        "name": env.get("ARKOUDA_METRICS_SERVER_NAME", "arkouda-metrics"),
        "interval": float(env.get("METRICS_POLLING_INTERVAL", "5")),
        "scrape_port": int(env.get("METRICS_SCRAPE_PORT", "5080")),
    }


def main():
    cfg = settings(os.environ)
    state = {"up": 0, "polls": 0}

    def poll():
        while True:
            try:
                with socket.create_connection((cfg["host"], cfg["port"]), timeout=2):
                    state["up"] = 1
            except OSError:
                state["up"] = 0
            state["polls"] += 1
            time.sleep(cfg["interval"])

    class Metrics(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            labels = f'arkouda_server_name="{cfg["name"]}"'
            body = (
                f"# {STAND_IN}\n"
                f"# HELP arkouda_up Whether the metrics port answered the last poll\n"
                f"# TYPE arkouda_up gauge\narkouda_up{{{labels}}} {state['up']}\n"
                f"arkouda_exporter_polls_total{{{labels}}} {state['polls']}\n"
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    threading.Thread(target=poll, daemon=True).start()
    # "All addresses" of the pod: its own address in the sandbox.
    host = os.environ.get("SANDBOX_POD_IP") or socket.gethostbyname(socket.gethostname())
    server = http.server.ThreadingHTTPServer((host, cfg["scrape_port"]), Metrics)
    print(
        f"{STAND_IN}: serving /metrics on {host}:{cfg['scrape_port']}, polling "
        f"{cfg['host']}:{cfg['port']} every {cfg['interval']:g}s as {cfg['name']}",
        flush=True,
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
