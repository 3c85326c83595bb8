"""Starts the real Gatehouse binary for the Python compatibility suites
(the Node suites' harness.mjs, in Python): ephemeral loopback ports, a
temporary data directory, a cheap password hash (test speed only) and the
given admin password."""
import os, re, shutil, subprocess, tempfile

BIN = os.environ.get("GATEHOUSE_BIN") or os.path.join(os.path.dirname(__file__), "../target/debug/gatehouse")


class Gatehouse:
    """A running server: `base` is the identity listener's URL."""

    def __init__(self, admin_password, prefix="gatehouse-py-"):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        env = dict(os.environ, GATEHOUSE_SERVER_DATA_DIR=self.dir, GATEHOUSE_SERVER_IDENTITY_LISTEN="127.0.0.1:0",
                   GATEHOUSE_SERVER_GATEWAY_LISTEN="127.0.0.1:0", GATEHOUSE_SERVER_PASSWORD_MEMORY_KIB="64",
                   GATEHOUSE_SERVER_PASSWORD_ITERATIONS="1", GATEHOUSE_ADMIN_PASSWORD=admin_password,
                   GATEHOUSE_LOG="warn")
        self.proc = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.PIPE, text=True)
        self.base = None
        for line in self.proc.stdout:
            m = re.search(r"identity provider listening on (http://[0-9.:]+)", line)
            if m:
                self.base = m.group(1)
                break
        if self.base is None:
            self.stop()
            raise RuntimeError("gatehouse did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
