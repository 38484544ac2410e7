"""Secrets never written (issue 11): api_key, client keys, kubeconfig contents and ServiceAccount tokens
appear in no module result, --diff output, report, log or -vvv output.

fix-shm.yml --diff -vvv and rollback_shm.yml -vvv run over three hosts on the real cluster, each
authenticating another way and fixing its own namespace: a ServiceAccount token (shmfix_api_key), the
kubeconfig's content as a dict (its client-key-data inline), and a client certificate/key pair given as
files. Every file the runs wrote (stdout+stderr, ANSIBLE_LOG_PATH, the reports) is searched for the
token, its signature, the key in base64 and every line of the PEM key.
"""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import yaml
from fault_helpers import PlaybookRun, create_namespaces, create_workloads, delete_namespaces, workload_set, write_inventory
from helpers import CONTEXT, playbook_env, single_report
from localcluster_helpers import STATE

KUBECONFIG = STATE / "kubeconfig"


def kubeconfig_parts() -> tuple[dict, str, dict]:
    """(the kubeconfig, its server, the user of CONTEXT)."""
    config = yaml.safe_load(KUBECONFIG.read_text())
    ctx = next(c["context"] for c in config["contexts"] if c["name"] == CONTEXT)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == ctx["user"])
    return config, cluster["server"], dict(user, ca=cluster["certificate-authority-data"])


def secret_needles(token: str, user: dict) -> dict:
    """{label: text} of what must never be written."""
    key_pem = base64.b64decode(user["client-key-data"]).decode()
    needles = {"sa token": token, "sa token signature": token.rsplit(".", 1)[-1], "client-key-data": user["client-key-data"]}
    body = [line for line in key_pem.splitlines() if line and not line.startswith("-----")]
    needles.update({f"client key PEM line {i}": line for i, line in enumerate(body) if len(line) >= 40})
    return needles


def test_secrets_never_written_at_vvv(kubectl, tmp_path):
    sfx = uuid.uuid4().hex[:6]
    namespaces = {h: f"faults-secret-{h}-{sfx}" for h in ("token", "dict", "keyfile")}
    binding = f"faults-secrets-{sfx}"
    create_namespaces(kubectl, list(namespaces.values()))
    try:
        for ns in namespaces.values():
            create_workloads(kubectl, ns, workload_set(2))
        kubectl("create", "serviceaccount", "shmfix", "-n", namespaces["token"])
        kubectl("create", "clusterrolebinding", binding, "--clusterrole=cluster-admin", f"--serviceaccount={namespaces['token']}:shmfix")
        token = kubectl("create", "token", "shmfix", "-n", namespaces["token"], "--duration=1h").strip()
        config, server, user = kubeconfig_parts()

        inputs = tmp_path / "inputs"  # what the test gives the runs (not searched)
        inputs.mkdir()
        ca, cert, key = inputs / "ca.pem", inputs / "client.pem", inputs / "client.key"
        ca.write_bytes(base64.b64decode(user["ca"]))
        cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
        key.write_bytes(base64.b64decode(user["client-key-data"]))
        key.chmod(0o600)
        common = {"eviction_verify_enabled": False, "remediate_verify_df": False, "remediate_size_limit": "256Mi", "remediate_rollout_soak": 0}
        hosts = {
            "by-token": {"shmfix_host": server, "shmfix_api_key": token, "shmfix_ca_cert": str(ca), "remediate_namespaces": [namespaces["token"]]},
            "by-dict": {"shmfix_kubeconfig": config, "shmfix_context": CONTEXT, "remediate_namespaces": [namespaces["dict"]]},
            "by-keyfile": {
                "shmfix_host": server,
                "shmfix_ca_cert": str(ca),
                "shmfix_client_cert": str(cert),
                "shmfix_client_key": str(key),
                "remediate_namespaces": [namespaces["keyfile"]],
            },
        }
        inventory = write_inventory(inputs / "hosts.json", hosts, common)

        out = tmp_path / "written"
        out.mkdir()
        runs = {}
        for playbook, args in (("fix-shm.yml", ("--diff", "-vvv")), ("rollback_shm.yml", ("-vvv",))):
            env = playbook_env(out / f"reports-{playbook}", ANSIBLE_LOG_PATH=str(out / f"{playbook}.ansible.log"))
            run = PlaybookRun(playbook, inventory, env, out / f"{playbook}.stdout", *args)
            rc = run.wait(900)
            assert rc == 0, run.output()[-4000:]
            runs[playbook] = run
            report = single_report(out / f"reports-{playbook}")
            assert [c["status"] for c in report["clusters"]] == ["ok", "ok", "ok"], [c["failure"] for c in report["clusters"]]
            # the runs really wrote: each host changed its namespace's workloads
            assert all(len(c["changed"]) == 2 for c in report["clusters"]), [(c["name"], len(c["changed"])) for c in report["clusters"]]
        fix_out = runs["fix-shm.yml"].output()
        assert "<127.0.0.1> EXEC" in fix_out or "ESTABLISH LOCAL CONNECTION" in fix_out, "not a -vvv output"
        assert "--- before" in fix_out or '"before"' in fix_out, "no --diff output"

        needles = secret_needles(token, user)
        written = [p for p in out.rglob("*") if p.is_file()]
        assert len(written) >= 6, written
        leaks = []
        total = 0
        for path in written:
            text = path.read_text(errors="replace")
            total += len(text)
            leaks += [(label, str(path.relative_to(out))) for label, needle in needles.items() if needle in text]
        print(f"secrets: {len(needles)} needles searched in {len(written)} files ({total} bytes); leaks: {leaks}")
        assert leaks == []
    finally:
        kubectl.run("delete", "clusterrolebinding", binding, "--ignore-not-found", check=False)
        delete_namespaces(kubectl, list(namespaces.values()))


def test_needles_are_found_where_they_are(tmp_path):
    """The search itself works: a file holding the secrets is caught (guards against a search that cannot fail)."""
    _config, _server, user = kubeconfig_parts()
    needles = secret_needles("aaa.bbb.ccc-signature", user)
    leak = tmp_path / "leak.txt"
    leak.write_text("x " + base64.b64decode(user["client-key-data"]).decode() + " aaa.bbb.ccc-signature")
    assert all(n in leak.read_text() for label, n in needles.items() if label != "client-key-data")
    assert Path(leak).read_text().count("ccc-signature") == 1
