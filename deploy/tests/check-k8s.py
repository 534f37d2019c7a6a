#!/usr/bin/python3
"""deploy/tests/check-k8s.py — owns the checks on the Kubernetes manifests
in deploy/k8s/ (run by deploy/check-deploy).

    check-k8s.py K8S_DIR CONFIG_YAML CAPS EXTRACT_TO

K8S_DIR      deploy/k8s: every *.yaml in it must parse (PyYAML, Debian's
             python3-yaml) and each document must have apiVersion, kind and
             metadata.name.
CONFIG_YAML  deploy/config/lingerd.yaml: the ConfigMap's `lingerd.yaml` key
             must equal it byte for byte.
CAPS         the systemd unit's capabilities, space-separated, CAP_ prefix
             (e.g. "CAP_NET_ADMIN CAP_BPF"): the DaemonSet must add exactly
             those and drop ALL.
EXTRACT_TO   where to write the ConfigMap's embedded config, for
             `lingerd check-config`.

Then the DaemonSet's promises: hostNetwork, not privileged, no privilege
escalation, a readiness probe GET /metrics on the config's metrics.listen
port (and host 127.0.0.1 when it listens on loopback), the ConfigMap mounted
where --config points, a hostPath at the directory of clients.socket,
Guaranteed resources with whole CPUs, nodeSelector and tolerations present.

Prints one line per check; exits 0 when all pass, 1 otherwise, 2 on usage.
Uses /usr/bin/python3 on purpose: PyYAML comes from python3-yaml.
"""

import ipaddress
import os
import pathlib
import sys

try:
    import yaml
except ImportError:
    print("check-k8s: error: PyYAML missing: apt-get install python3-yaml (deploy/bootstrap)",
          file=sys.stderr)
    sys.exit(1)

failed = 0


def check(ok, what):
    global failed
    print(("ok:   " if ok else "FAIL: ") + what)
    if not ok:
        failed += 1
    return ok


def dig(obj, *path, default=None):
    for key in path:
        if isinstance(obj, dict) and key in obj:
            obj = obj[key]
        elif isinstance(obj, list) and isinstance(key, int) and -len(obj) <= key < len(obj):
            obj = obj[key]
        else:
            return default
    return obj


def main(argv):
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    k8s_dir, config_path, caps_arg, extract_to = argv[1:]
    config_text = pathlib.Path(config_path).read_text()
    config = yaml.safe_load(config_text)

    docs = []
    files = sorted(pathlib.Path(k8s_dir).glob("*.yaml"))
    check(len(files) >= 2, f"{k8s_dir}: {len(files)} manifest file(s)")
    for f in files:
        try:
            loaded = [d for d in yaml.safe_load_all(f.read_text()) if d is not None]
        except yaml.YAMLError as e:
            check(False, f"{f}: YAML syntax: {e}")
            continue
        check(bool(loaded), f"{f}: parses ({len(loaded)} document(s))")
        for d in loaded:
            name = dig(d, "metadata", "name")
            check(isinstance(d, dict) and d.get("apiVersion") and d.get("kind") and name,
                  f"{f}: {dig(d, 'kind')}/{name} has apiVersion, kind, metadata.name")
            docs.append(d)

    def one(kind, api):
        found = [d for d in docs if d.get("kind") == kind]
        if not check(len(found) == 1, f"exactly one {kind}"):
            return None
        check(found[0].get("apiVersion") == api, f"{kind} apiVersion {api}")
        return found[0]

    cm = one("ConfigMap", "v1")
    ds = one("DaemonSet", "apps/v1")
    if cm is None or ds is None:
        return 1

    embedded = dig(cm, "data", "lingerd.yaml")
    check(embedded == config_text,
          f"ConfigMap data['lingerd.yaml'] equals {config_path} byte for byte")
    if isinstance(embedded, str):
        pathlib.Path(extract_to).write_text(embedded)

    pod = dig(ds, "spec", "template", "spec", default={})
    labels = dig(ds, "spec", "template", "metadata", "labels", default={})
    selector = dig(ds, "spec", "selector", "matchLabels", default={})
    check(bool(selector) and all(labels.get(k) == v for k, v in selector.items()),
          "DaemonSet selector matches the pod template's labels")
    check(pod.get("hostNetwork") is True, "hostNetwork: true")
    check(pod.get("dnsPolicy") == "ClusterFirstWithHostNet", "dnsPolicy: ClusterFirstWithHostNet")
    check(isinstance(pod.get("nodeSelector"), dict) and pod["nodeSelector"],
          "nodeSelector present (placeholder)")
    check(isinstance(pod.get("tolerations"), list), "tolerations present (placeholder)")

    containers = [c for c in pod.get("containers", []) if c.get("name") == "lingerd"]
    if not check(len(containers) == 1, "one container named lingerd"):
        return 1
    c = containers[0]
    sc = c.get("securityContext", {})
    check(sc.get("privileged") is False, "lingerd: privileged: false")
    check(sc.get("allowPrivilegeEscalation") is False, "lingerd: allowPrivilegeEscalation: false")
    want_caps = sorted(x.removeprefix("CAP_") for x in caps_arg.split())
    got_caps = sorted(dig(sc, "capabilities", "add", default=[]))
    check(bool(want_caps) and got_caps == want_caps,
          f"lingerd: adds exactly the unit's capabilities {want_caps} (has {got_caps})")
    check(dig(sc, "capabilities", "drop") == ["ALL"], "lingerd: drops ALL other capabilities")
    for init in pod.get("initContainers", []):
        isc = init.get("securityContext", {})
        check(isc.get("privileged") is False and not dig(isc, "capabilities", "add"),
              f"init container {init.get('name')}: unprivileged, no capabilities")

    # --config FILE must be a key of the mounted ConfigMap.
    args = c.get("args", [])
    conf_file = args[args.index("--config") + 1] if "--config" in args[:-1] else None
    check(args[:1] == ["run"] and conf_file is not None, f"lingerd: args run --config FILE ({args})")
    volumes = {v.get("name"): v for v in pod.get("volumes", [])}
    mounts = {m.get("mountPath"): m for m in c.get("volumeMounts", [])}
    if conf_file:
        d, base = os.path.split(conf_file)
        m = mounts.get(d)
        v = volumes.get(m.get("name")) if m else None
        check(v is not None and dig(v, "configMap", "name") == dig(cm, "metadata", "name")
              and base in (cm.get("data") or {}),
              f"{conf_file} comes from ConfigMap {dig(cm, 'metadata', 'name')} mounted at {d}")

    # The attach socket's directory is a hostPath at the same path.
    sock = dig(config, "clients", "socket", default="/run/lingerd/lingerd.sock")
    sock_dir = os.path.dirname(sock)
    m = mounts.get(sock_dir)
    v = volumes.get(m.get("name")) if m else None
    check(v is not None and dig(v, "hostPath", "path") == sock_dir and not m.get("readOnly"),
          f"clients.socket directory {sock_dir} is a writable hostPath mount")

    # Readiness on the config's metrics port.
    listen = dig(config, "metrics", "listen", default="127.0.0.1:9187")
    probe = dig(c, "readinessProbe", "httpGet", default={})
    if check(listen is not None, f"config metrics.listen is set ({listen})"):
        host, _, port = str(listen).rpartition(":")
        host = host.strip("[]")
        check(probe.get("path") == "/metrics", "readinessProbe GET /metrics")
        check(str(probe.get("port")) == port,
              f"readinessProbe port {probe.get('port')} == metrics.listen port {port}")
        if ipaddress.ip_address(host).is_loopback:
            check(probe.get("host") == host,
                  f"readinessProbe host {probe.get('host')} == loopback listener {host}")
        ports = [p.get("containerPort") for p in c.get("ports", [])]
        check(int(port) in ports, f"containerPort {port} declared")

    # Guaranteed QoS with whole CPUs (static CPU manager: exclusive cores).
    req = dig(c, "resources", "requests", default={})
    lim = dig(c, "resources", "limits", default={})
    cpu = str(lim.get("cpu", ""))
    check(req == lim and cpu.isdigit() and int(cpu) >= 2 and "memory" in lim,
          f"resources: requests == limits, whole CPUs ({cpu}), memory set")

    print(f"check-k8s: {sum(1 for _ in docs)} documents; "
          f"{'all checks passed' if not failed else f'{failed} check(s) failed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
