"""Locust load test of Pulse: devices posting metrics to ingest, dashboards reading the api.

User classes (weights in brackets):

* ``DeviceUser`` [10]: one device posting a single metric about once a second. Each device has its
  own rps and cpu baseline, Gaussian noise, a slow swing, and occasional spikes (rps ×3–6, cpu
  90–100) and drops (rps near 0).
* ``BatchDeviceUser`` [1]: a gateway of 100 such devices posting one JSON array of 100 metrics (a
  reading of each device) every 1–3 s.
* ``DashboardUser`` [2]: polls ``GET /analyze`` (the fleet), ``GET /analyze?device_id=…`` and
  ``GET /anomalies`` (fleet and per device), learning device ids from ``GET /devices``.

Mixes (``--mix``, environment ``PULSE_LOCUST_MIX``):

* ``classic`` (the default): events with cpu and rps only, as above.
* ``named``: every event also carries 4 named metrics, ``"metrics": {"temperature", "humidity",
  "battery_v", "vibration"}`` (6 signals with cpu and rps), each device with its own baseline per
  signal and spikes on the same events as rps and cpu, and the device's ``"tags": {"site", "model"}``
  (4 sites, 3 models). Dashboards also read ``GET /signals`` and ``GET /tags`` and, with what
  those list, ``GET /analyze?signal=…``, ``GET /analyze?tag=…``, ``GET /devices?tag=…`` and
  ``GET /anomalies?tag=…``.

Every response is checked: a POST passes only with 202 and ``"status":"ok"`` (and, for a batch,
``"accepted":100``); a GET only with 200 and the fields docs/API.md documents.

Where to send. Ingest and the api are separate services, so there are two base URLs:

==================  =====================  ===========================  =============================
service             option                 environment variable         default
==================  =====================  ===========================  =============================
ingest              ``--ingest-host URL``  ``PULSE_INGEST_URL``         ``--host``, else
                                                                        ``http://127.0.0.1:8080``
api                 ``--api-host URL``     ``PULSE_API_URL``            ``--host``, else
                                                                        ``http://127.0.0.1:8081``
==================  =====================  ===========================  =============================

Behind the Kubernetes Ingress, one host serves both (``POST /metrics`` goes to ingest, the rest to
the api): give only ``--host http://pulse.local``. A host typed into the web UI's Host field
overrides both in the same way.

Runs with Debian bookworm's ``python3-locust`` (2.12) and current Locust 2.x (requirements.txt)::

    locust -f locust/locustfile.py --headless -u 50 -r 10 -t 60s     # against `make run`
    locust -f locust/locustfile.py --headless -u 50 -r 10 -t 60s --mix named
    locust -f locust/locustfile.py                                    # web UI on http://localhost:8089
"""

import itertools
import json
import math
import os
import random
import threading
import time
import uuid

from locust import FastHttpUser, between, events, task

DEFAULT_INGEST = "http://127.0.0.1:8080"
DEFAULT_API = "http://127.0.0.1:8081"

# One event in 100 is a spike, one in 200 a drop.
SPIKE_RATE = 0.01
DROP_RATE = 0.005
BATCH_SIZE = 100

# The mixes of --mix: classic events carry cpu and rps; named ones 4 named metrics and tags too.
MIXES = ("classic", "named")
# Named metrics of the named mix: (name, baseline range, noise as a share of the baseline, decimals).
NAMED_METRICS = (
    ("temperature", (15.0, 35.0), 0.02, 2),
    ("humidity", (30.0, 70.0), 0.03, 2),
    ("battery_v", (3.5, 4.1), 0.005, 3),
    ("vibration", (0.05, 0.5), 0.1, 3),
)
# The tags of the named mix's devices: each device has one site and one model.
SITES = ("berlin", "paris", "lisbon", "oslo")
MODELS = ("x1", "x2", "s9")

# Device ids are unique per Locust process (and so per worker when distributed): a run never mixes
# its devices with an earlier run's.
RUN_ID = uuid.uuid4().hex[:8]
_ids = itertools.count()
_ids_lock = threading.Lock()


def _next_id(kind):
    with _ids_lock:
        n = next(_ids)
    return "locust-%s-%s%06d" % (RUN_ID, kind, n)


@events.init_command_line_parser.add_listener
def _add_arguments(parser):
    parser.add_argument(
        "--ingest-host",
        type=str,
        default="",
        env_var="PULSE_INGEST_URL",
        help="ingest base URL (POST /metrics; env PULSE_INGEST_URL); default --host, else " + DEFAULT_INGEST,
    )
    parser.add_argument(
        "--api-host",
        type=str,
        default="",
        env_var="PULSE_API_URL",
        help="api base URL (GET /analyze, /anomalies, /devices; env PULSE_API_URL); default --host, else " + DEFAULT_API,
    )
    parser.add_argument(
        "--mix",
        type=str,
        choices=MIXES,
        default="classic",
        env_var="PULSE_LOCUST_MIX",
        help="classic: events with cpu and rps; named: also 4 named metrics and tags per event, and dashboards "
        "reading the signal and tag views (env PULSE_LOCUST_MIX); default classic",
    )


def _clean(url):
    return (url or "").strip().rstrip("/")


def base_urls(environment):
    """Returns (ingest, api): each service's own option, else --host (one Ingress), else the
    `make run` defaults. Read when each user starts, so values edited in the web UI apply."""
    opts = environment.parsed_options
    host = _clean(environment.host)
    ingest = _clean(getattr(opts, "ingest_host", "")) if opts else ""
    api = _clean(getattr(opts, "api_host", "")) if opts else ""
    return ingest or host or DEFAULT_INGEST, api or host or DEFAULT_API


def mix(environment):
    """Returns the --mix in force: read when each user starts, as the URLs are."""
    opts = environment.parsed_options
    m = (getattr(opts, "mix", "") or "").strip() if opts else ""
    return m if m in MIXES else "classic"


@events.init.add_listener
def _show_hosts(environment, **_kwargs):
    ingest, api = base_urls(environment)
    # Class-level hosts let the web UI start without a Host; a Host typed there overrides both.
    DeviceUser.host = BatchDeviceUser.host = ingest
    DashboardUser.host = api


class Device:
    """One simulated device: its own baseline, noise, swing, spikes and drops; named, also its own
    baseline and noise per named metric, and its tags."""

    def __init__(self, device_id, rng, named=False):
        self.id = device_id
        self.rng = rng
        self.rps_base = 50 * 10 ** rng.random()  # 50-500 requests/s, log-uniform
        self.rps_noise = self.rps_base * rng.uniform(0.05, 0.15)
        self.cpu_base = rng.uniform(10, 70)
        self.cpu_noise = rng.uniform(2, 6)
        self.phase = rng.uniform(0, 2 * math.pi)
        self.named = []
        self.tags = None
        if named:
            for name, (lo, hi), noise, decimals in NAMED_METRICS:
                base = rng.uniform(lo, hi)
                self.named.append((name, base, base * noise * rng.uniform(0.5, 1.5), decimals))
            self.tags = {"site": rng.choice(SITES), "model": rng.choice(MODELS)}

    def reading(self, now):
        r = self.rng
        swing = 1 + 0.1 * math.sin(self.phase + 2 * math.pi * now / 600)  # ±10% over 10 minutes
        rps = self.rps_base * swing + r.gauss(0, self.rps_noise)
        cpu = self.cpu_base * swing + r.gauss(0, self.cpu_noise)
        u = r.random()
        spike = u < SPIKE_RATE
        if spike:
            rps = self.rps_base * r.uniform(3, 6)
            cpu = r.uniform(90, 100)
        elif u < SPIKE_RATE + DROP_RATE:
            rps = self.rps_base * r.uniform(0, 0.1)
        body = {
            "device_id": self.id,
            "cpu": round(min(max(cpu, 0.0), 100.0), 2),
            "rps": round(max(rps, 0.0), 2),
        }
        if self.named:
            metrics = {}
            for name, base, noise, decimals in self.named:
                v = base * swing + r.gauss(0, noise)
                if spike:  # overheating and shaking with the load
                    v += noise * r.uniform(6, 12)
                metrics[name] = round(max(v, 0.0), decimals)
            body["metrics"] = metrics
            body["tags"] = self.tags
        body["timestamp"] = round(now, 3)
        return body


def _fail(resp, why):
    error = getattr(resp, "error", None)  # the connection error, when there was no answer
    detail = repr(error) if error and not resp.status_code else (resp.text or "")[:200]
    resp.failure("%s: HTTP %s %s" % (why, resp.status_code, detail))


def _json(resp):
    if not resp.text:
        return None
    try:
        return resp.json()
    except Exception:  # not JSON, or no answer at all: the caller fails the request
        return None


def check_accepted(resp, n):
    """Passes a POST /metrics answered 202 with status ok (and accepted == n for a batch)."""
    body = _json(resp)
    if resp.status_code != 202 or not isinstance(body, dict) or body.get("status") != "ok":
        _fail(resp, "not accepted")
    elif n > 1 and body.get("accepted") != n:
        _fail(resp, "accepted %r of %d" % (body.get("accepted"), n))
    else:
        resp.success()


class PulseUser(FastHttpUser):
    abstract = True
    service = "ingest"

    def __init__(self, environment):
        ingest, api = base_urls(environment)
        # Before FastHttpUser builds its client on self.host: an instance attribute wins over the
        # class attribute Locust sets from --host.
        self.host = ingest if self.service == "ingest" else api
        super().__init__(environment)


class DeviceUser(PulseUser):
    """A device posting one metric about once a second."""

    weight = 10
    wait_time = between(0.5, 1.5)

    def on_start(self):
        self.device = Device(_next_id("d"), random.Random(), named=mix(self.environment) == "named")

    @task
    def post_metric(self):
        body = self.device.reading(time.time())
        with self.client.post("/metrics", json=body, name="/metrics", catch_response=True) as resp:
            check_accepted(resp, 1)


class BatchDeviceUser(PulseUser):
    """A gateway posting a reading of each of its 100 devices in one JSON array."""

    weight = 1
    wait_time = between(1, 3)

    def on_start(self):
        rng = random.Random()
        gw = _next_id("gw")
        named = mix(self.environment) == "named"
        self.devices = [Device("%s-%03d" % (gw, k), rng, named) for k in range(BATCH_SIZE)]

    @task
    def post_batch(self):
        now = time.time()
        body = [d.reading(now - (BATCH_SIZE - k) / 1000.0) for k, d in enumerate(self.devices)]
        with self.client.post(
            "/metrics", json=body, name="/metrics [batch of %d]" % BATCH_SIZE, catch_response=True
        ) as resp:
            check_accepted(resp, BATCH_SIZE)


# Device ids the dashboards have seen listed by GET /devices (so they have results), shared by the
# dashboard users of this process; in the named mix also the signals of GET /signals and the
# "key:value" tags of GET /tags.
_known = []
_known_at = [0.0]
_signals = []
_tags = []


class DashboardUser(PulseUser):
    """A dashboard polling the fleet, a device and the anomalies."""

    service = "api"
    weight = 2
    wait_time = between(1, 3)

    def __init__(self, environment):
        super().__init__(environment)
        if mix(environment) == "named":
            # The named mix also reads the signal and tag views: the instance's tasks win over the
            # class's, so the classic mix's dashboards stay exactly as they were.
            self.tasks = list(type(self).tasks) + [
                DashboardUser.signals,
                DashboardUser.tags,
                DashboardUser.signal,
                DashboardUser.signal,
                DashboardUser.signal,
                DashboardUser.tag,
                DashboardUser.tag,
                DashboardUser.tag,
            ]

    def _get(self, path, name, check):
        with self.client.get(path, name=name, catch_response=True) as resp:
            body = _json(resp)
            if resp.status_code != 200 or not isinstance(body, dict):
                _fail(resp, "unexpected answer")
                return None
            problem = check(body)
            if problem:
                _fail(resp, problem)
                return None
            resp.success()
            return body

    def _device(self):
        if not _known or time.time() - _known_at[0] > 30:
            self.devices()
        return random.choice(_known) if _known else None

    @task(3)
    def fleet(self):
        self._get(
            "/analyze",
            "/analyze",
            lambda b: None if isinstance(b.get("total_processed"), int) else "no total_processed",
        )

    @task(3)
    def device(self):
        device_id = self._device()
        if device_id is None:
            return
        self._get(
            "/analyze?device_id=" + device_id,
            "/analyze?device_id=[id]",
            lambda b: None if b.get("device_id") == device_id else "another device's results",
        )

    @task(2)
    def anomalies(self):
        device_id = self._device() if random.random() < 0.5 else None
        if device_id:
            path, name = "/anomalies?limit=20&device_id=" + device_id, "/anomalies?device_id=[id]"
        else:
            path, name = "/anomalies?limit=50", "/anomalies"
        self._get(path, name, lambda b: None if isinstance(b.get("anomalies"), list) else "no anomalies list")

    @task(1)
    def devices(self):
        body = self._get(
            "/devices?limit=100",
            "/devices",
            lambda b: None if isinstance(b.get("devices"), list) else "no devices list",
        )
        if body is not None:
            ids = [d["device_id"] for d in body["devices"] if isinstance(d, dict) and "device_id" in d]
            if ids:
                _known[:] = ids
                _known_at[0] = time.time()

    # The named mix's tasks (see __init__).

    def signals(self):
        body = self._get("/signals", "/signals", _check_signals)
        if body is not None:
            _signals[:] = body["signals"]

    def tags(self):
        body = self._get("/tags", "/tags", _check_tags)
        if body is not None:
            _tags[:] = ["%s:%s" % (k, v) for k, vs in sorted(body["tags"].items()) for v in vs]

    def signal(self):
        if not _signals:
            self.signals()
        if not _signals:
            return
        name = random.choice(_signals)
        self._get(
            "/analyze?signal=" + name,
            "/analyze?signal=[name]",
            lambda b: None if b.get("signal") == name and isinstance(b.get("total_processed"), int) else "another signal's view",
        )

    def tag(self):
        if not _tags:
            self.tags()
        if not _tags:
            return
        tag = random.choice(_tags)
        view = random.random()
        if view < 0.5:
            self._get(
                "/analyze?tag=" + tag,
                "/analyze?tag=[tag]",
                lambda b: None if b.get("tag") == tag and isinstance(b.get("devices"), int) else "another tag's view",
            )
        elif view < 0.75:
            self._get(
                "/devices?limit=100&tag=" + tag,
                "/devices?tag=[tag]",
                lambda b: None if isinstance(b.get("devices"), list) else "no devices list",
            )
        else:
            self._get(
                "/anomalies?limit=20&tag=" + tag,
                "/anomalies?tag=[tag]",
                lambda b: None if isinstance(b.get("anomalies"), list) else "no anomalies list",
            )


def _check_signals(body):
    """GET /signals: {"signals": [names, sorted]}."""
    names = body.get("signals")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return "no signals list"
    if names != sorted(names):
        return "signals not sorted"
    return None


def _check_tags(body):
    """GET /tags: {"tags": {key: [values]}}."""
    tags = body.get("tags")
    if not isinstance(tags, dict) or not all(isinstance(v, list) for v in tags.values()):
        return "no tags object of lists"
    return None


if __name__ == "__main__":
    # `python3 locust/locustfile.py [named]` prints a sample of a mix's bodies, to eyeball the data.
    import sys

    rng = random.Random(1)
    d = Device("device-1", rng, named=sys.argv[1:] == ["named"])
    print(json.dumps([d.reading(time.time() + i) for i in range(5)], indent=1))
