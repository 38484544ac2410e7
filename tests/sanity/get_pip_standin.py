# Local stand-in for ansible-test's get-pip bootstrap (no access to its download host):
# bootstrap pip from the stdlib's ensurepip, then install what get-pip would (pip==24.2 etc.) from PyPI.
import ensurepip
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--cert", "/etc/ssl/certs/ca-certificates.crt"] + args)
