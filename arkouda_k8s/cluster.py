"""ArkoudaCluster: the one lifecycle every front end (magics, widgets, CLI) uses.

It owns the life of a deployment: preflight (where we are about to act, permissions,
Pod Security, quota and node capacity), the ordered start (credentials -> CSR ->
RBAC -> locale pods Running -> stale self-registered Service removed -> server pod
Ready -> Arkouda handshake through the tunnel), readiness that explains itself
(progress callbacks, typed errors with the Kubernetes reason), the tunnel and session,
status, logs, a heartbeat with an optional time-to-live, teardown, rollback of a failed
deploy, reattach by name and the list of deployments. Everything goes through
``kube.py``; objects come from ``manifests.py`` and are created in order by
``creation.create``; the tunnel, handshake and session are the ``ServerConnection`` it
holds (connection.py), the pods' logs ``PodLogs`` (podlogs.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import logging
import secrets
import time
import weakref
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any

from . import background, creation, manifests, preflight, teardown
from .connection import ServerConnection
from .credentials import Credentials
from .errors import (
    ArkoudaK8sError,
    ClusterNotFound,
    DeployError,
    KubeError,
    UsageError,
)
from .inventory import (  # noqa: F401 (re-export: the names users and tests know from here)
    COMPONENT_LABEL,
    EPHEMERAL_ANNOTATION,
    HEARTBEAT_ANNOTATION,
    OWNED_KINDS,
    TTL_ANNOTATION,
    Heartbeat,
    ServerAddress,
    _check_same_spec,
    _now_text,
    _ready,
    beat,
    existing_spec,
    instance_exists,
    kube_in,
    list_clusters,
    read_state,
    server_address_in_cluster,
    spec_changes,
)
from .kube import Access, Kube, WatchDeadline, list_contexts  # noqa: F401 (re-export)
from .ownership import Ownership
from .ownership import self_registers as _self_registers
from .podlogs import PodLogs
from .preflight import Findings, rbac_yaml, required_access  # noqa: F401 (re-export)
from .readiness import Readiness, deployment_status
from .spec import ClusterSpec
from .stages import Progress, ProgressCallback, Report, Timeouts  # noqa: F401 (re-export)
from .status import (  # noqa: F401 (re-export: the status types are the lifecycle's answers)
    OUTPUT_API_VERSION,
    ClusterInfo,
    ClusterStatus,
    cluster_list_dict,
)
from .teardown import teardown_all, teardown_expired, teardown_named  # noqa: F401 (re-export)

if TYPE_CHECKING:  # the tunnel and the session load when first used
    from .connection import _BorrowedTunnel
    from .session import Session
    from .tunnel import Tunnel

log = logging.getLogger(__name__)


# How long status(handshake=True) waits for the server to answer a short-lived tunnel.
STATUS_HANDSHAKE = 15.0


class DeployMode(enum.Enum):
    """What ``deploy()`` does when a deployment of that name exists (or does not)."""

    CREATE = "create"  # fail if it exists
    CREATE_OR_CONNECT = "create-or-connect"  # create, or attach to the same spec
    CONNECT_ONLY = "connect-only"  # attach; fail if it does not exist

    @classmethod
    def of(cls, value: DeployMode | str) -> DeployMode:
        if isinstance(value, DeployMode):
            return value
        try:
            return cls(str(value).replace("_", "-").lower())
        except ValueError:
            raise UsageError(
                f"mode: {value!r} is not a deploy mode",
                "use create, create-or-connect or connect-only",
            ) from None


# -- the lifecycle -------------------------------------------------------------------------


class ArkoudaCluster:
    """One Arkouda deployment on Kubernetes: deploy, wait, tunnel, connect, teardown.

    >>> spec = ClusterSpec(name="demo", locales=4, memory="4Gi")        # doctest: +SKIP
    >>> with ArkoudaCluster(spec) as cluster:                             # doctest: +SKIP
    ...     ak = cluster.connect()
    ...     print(cluster.status().to_text())
    >>> cluster = ArkoudaCluster.from_name("demo")  # after a kernel restart  # doctest: +SKIP
    >>> cluster.teardown()                                                # doctest: +SKIP

    ``with`` deploys on entry and closes (tunnel, heartbeat, session) on exit; the
    deployment keeps running unless ``teardown_on_exit=True``.
    """

    # The ordering before issue #18 (locale pods Running before the server pod is even
    # created, so its node pulls the image only then); kept for benchmarks/deploy.py.
    _server_after_locales = False

    def __init__(
        self,
        spec: ClusterSpec,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        mode: DeployMode | str = DeployMode.CREATE_OR_CONNECT,
        on_progress: ProgressCallback | None = None,
        keep_on_failure: bool = False,
        timeouts: Timeouts | None = None,
        kube: Kube | None = None,
        heartbeat_interval: float | None = None,
        on_tunnel_state: Callable[[str], None] | None = None,
        teardown_on_exit: bool = False,
        local_port: int = 0,
        create_namespace: bool = False,
        ephemeral: bool = False,
    ) -> None:
        self.kube = kube or Kube.connect(kubeconfig, context, spec.namespace)
        self._spec = spec if spec.namespace else spec.with_namespace(self.kube.namespace)
        if self.kube.namespace != self.spec.namespace:
            self.kube.namespace = self.spec.namespace or self.kube.namespace
        self.mode = DeployMode.of(mode)
        self.keep_on_failure = keep_on_failure
        self.timeouts = timeouts or Timeouts()
        self.names = manifests.names(self.spec)
        self._progress_listeners: list[ProgressCallback] = [on_progress] if on_progress else []
        self.heartbeat_interval = heartbeat_interval or _default_heartbeat(self.spec)
        self.teardown_on_exit = teardown_on_exit
        self.csr_pending_admin = False
        # Helm's --create-namespace: created by deploy() only when missing, and never
        # deleted by teardown (other things may live in it).
        self.create_namespace = create_namespace
        self.ephemeral = ephemeral  # recorded on the state ConfigMap by a deploy that creates
        self.namespace_missing = False
        self.warnings: list[str] = []  # what preflight found worth saying, not fatal
        # Which objects are this deployment's (its state ConfigMap and what that owns).
        self.ownership = Ownership(self.kube, self.spec.name, self.namespace)
        # The waits: locale pods, server pod, what a stuck one is waiting for.
        self.readiness = _readiness_of(self)
        # Token, tunnel, handshake, session; the tunnel's first target is the pod a wait
        # saw Ready.
        self.connection = ServerConnection(
            self.kube,
            self.spec,
            local_port=local_port,
            on_progress=_weak_report(self),
            ready_pod=self.readiness.take_ready_server_pod,
        )
        if on_tunnel_state is not None:
            self.on_tunnel_state.append(on_tunnel_state)
        self._heartbeat: Heartbeat | None = None

    def __repr__(self) -> str:
        return (
            f"ArkoudaCluster(name={self.name!r}, namespace={self.namespace!r}, "
            f"mode={self.spec.mode!r}, locales={self.spec.locales}, "
            f"address={self.address!r})"
        )

    # -- names the front ends use -----------------------------------------------------

    @property
    def spec(self) -> ClusterSpec:
        return self._spec

    @spec.setter
    def spec(self, spec: ClusterSpec) -> None:
        # attaching adopts the deployment's recorded spec: its waits go by that one too
        self._spec = spec
        self.readiness.spec = spec
        self.connection.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def namespace(self) -> str:
        return self.spec.namespace or self.kube.namespace

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) on 127.0.0.1 where the tunnel listens, once it runs."""
        return self.connection.address

    # What the connection holds, under the names the front ends use.
    @property
    def tunnel(self) -> Tunnel | _BorrowedTunnel | None:
        return self.connection.tunnel

    @property
    def session(self) -> Session | None:
        return self.connection.session

    @property
    def config(self) -> dict[str, Any] | None:
        """The server's getconfig answer (from the handshake)."""
        return self.connection.config

    @config.setter
    def config(self, config: dict[str, Any] | None) -> None:
        self.connection.config = config

    @property
    def on_tunnel_state(self) -> list[Callable[[str], None]]:
        return self.connection.listeners

    @property
    def _token(self) -> str | None:
        return self.connection.token_text

    @_token.setter
    def _token(self, token: str | None) -> None:
        self.connection.token_text = token

    @property
    def created(self) -> bool:
        """This object created the deployment (its rollback owns it)."""
        return self.ownership.created

    @property
    def instance_id(self) -> str | None:
        """The deployment's random id (set by a deploy that creates, or on reattach)."""
        return self.ownership.instance_id

    @property
    def selector(self) -> str:
        return manifests.selector(self.spec)

    def add_progress_listener(self, cb: ProgressCallback) -> None:
        self._progress_listeners.append(cb)

    def add_tunnel_listener(self, cb: Callable[[str], None]) -> None:
        self.on_tunnel_state.append(cb)

    def _progress(
        self, stage: str, done: int, total: int, message: str, *, note: bool = False
    ) -> None:
        event = Progress(stage, done, total, message, note)
        log.debug("%s %d/%d %s", stage, done, total, message)
        for cb in list(self._progress_listeners):
            try:
                cb(event)
            except Exception:  # a broken progress bar must not break the deploy
                log.exception("progress callback failed")

    # -- deploy ---------------------------------------------------------------------------

    def __enter__(self) -> ArkoudaCluster:
        if self.tunnel is None:
            self.deploy()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.teardown_on_exit:
            self.teardown()
        else:
            self.close()

    def deploy(self, wait: bool = True) -> ArkoudaCluster:
        """Create (or attach to) the deployment; with ``wait``, until Arkouda answers.

        ``wait=False`` returns once the server pod is created (with its locales: the
        server's launch script waits for them inside the pod).
        """
        self._progress("preflight", 0, 1, f"using {self.kube.describe()}")
        deadline = time.monotonic() + self.timeouts.preflight
        creating = self.mode is not DeployMode.CONNECT_ONLY
        # Key generation is CPU work: done while the probes below wait for the API. Held
        # by this call only: an attach or join drops the keys unused, a create once
        # their Secrets exist.
        credentials = (
            background.in_background(Credentials.generate, self.spec) if creating else None
        )
        # Does it exist, and (when we may create it) can it be deployed here: asked side
        # by side, one round trip. A 403 on the probes is explained by the preflight.
        calls: list[Callable[[], Any]] = [
            functools.partial(background.outcome, self._existing_spec, deadline),
            functools.partial(background.outcome, self._instance_exists, deadline),
        ]
        if creating:
            calls.append(functools.partial(background.outcome, self._preflight_findings, deadline))
            # every name the deploy would take, looked up now; it matters only if the
            # deployment turns out not to exist
            calls.append(
                functools.partial(background.outcome, self.ownership.taken, self.spec, deadline)
            )
        existing_out, exists_out, *found_out = self.kube.concurrently(calls)
        for outcome in (existing_out, exists_out):
            exc = outcome[1]
            if isinstance(exc, KubeError) and exc.status == 403 and found_out:
                # names every missing permission at once, not just this one
                self._judge(background.result(found_out[0]))
            if exc is not None:
                raise exc
        existing = existing_out[0]
        exists = existing is not None or bool(exists_out[0])
        if exists:
            if self.mode is DeployMode.CREATE:
                raise ArkoudaK8sError(
                    f"deployment {self.name!r} already exists in namespace {self.namespace}",
                    f"connect to it (mode create-or-connect), or remove it with "
                    f"`arkouda-k8s teardown {self.name} -n {self.namespace}`",
                )
            if existing is not None and self.mode is DeployMode.CREATE_OR_CONNECT:
                _check_same_spec(existing, self.spec)
            if existing is not None:
                self.spec = existing
            return self._attach(wait)
        if self.mode is DeployMode.CONNECT_ONLY:
            raise ClusterNotFound(
                f"no arkouda-k8s deployment {self.name!r} in namespace {self.namespace} "
                f"({self.kube.describe()})",
                "deploy it first, or check the name with `arkouda-k8s list -A`",
            )
        self._judge(background.result(found_out[0]))
        taken = background.result(found_out[1])
        if taken is not None:
            # Another session deploying this same name may have created its state
            # ConfigMap (always its first object) between our existence probes and the
            # name lookup: that is its deploy under way, to be joined, not a stranger's.
            if self.ownership.owner_object(deadline) is not None:
                return self._join(wait)
            raise self.ownership.foreign(*taken)
        if self.create_namespace and self.namespace_missing:
            self._create_namespace(deadline)
        # The state ConfigMap first: it owns every other object of the deployment
        # (ownerReferences), and another session deploying the name meets it (join).
        state = manifests.state_configmap(
            self.spec,
            secrets.token_hex(8),
            heartbeat=_now_text(),
            context=self.kube.context,
            ephemeral=self.ephemeral,
        )
        if not self.ownership.claim(state, time.monotonic() + self.timeouts.preflight):
            return self._join(wait)
        assert credentials is not None  # creating
        try:
            self._create(wait, credentials)
        except BaseException as exc:
            self.connection.stop_tunnel()
            teardown.after_failure(
                self.ownership,
                self.spec,
                exc,
                keep=self.keep_on_failure,
                timeout=self.timeouts.teardown,
                report=self._progress,
            )
            raise
        return self

    def _create_namespace(self, deadline: float) -> None:
        try:
            self.kube.create(manifests.namespace(self.spec), deadline=deadline)
        except KubeError as exc:
            if exc.status != 409:  # created meanwhile by someone else: just as good
                raise
            return
        self._progress("preflight", 1, 1, f"namespace {self.namespace} created")

    def _create(self, wait: bool, credentials: background.Background[Credentials]) -> None:
        """Create every object in order (``creation.create``), then, with ``wait``,
        handshake; the heartbeat starts either way. Of ``credentials`` only the token
        stays in this process (the session's); ``creation.create`` takes the rest and
        lets it go once the Secrets hold it."""
        self._token = credentials.result().token
        creation.create(
            self.kube,
            self.ownership,
            self.readiness,
            self.spec,
            credentials.take,
            self.timeouts,
            self._progress,
            wait=wait,
            may_approve=not self.csr_pending_admin,
            server_after_locales=self._server_after_locales,
        )
        if wait:
            self.handshake()
        self._start_heartbeat(beat_now=False)

    # -- join or attach ---------------------------------------------------------------------

    def _join(self, wait: bool) -> ArkoudaCluster:
        """Another session is creating this deployment right now: wait for it."""
        if self.mode is DeployMode.CREATE:
            raise ArkoudaK8sError(
                f"deployment {self.name!r} is being created by another session",
                "wait for it and connect (mode create-or-connect), or choose another name",
            )
        existing = self._existing_spec()
        if existing is not None:
            _check_same_spec(existing, self.spec)
            self.spec = existing
        self._progress("preflight", 1, 1, f"another session is creating {self.name}; waiting")
        if wait:
            deadline = time.monotonic() + self.timeouts.credentials + self.timeouts.locales
            self.wait_server(deadline + self.timeouts.server)
            self.handshake()
        self._start_heartbeat()
        return self

    def _attach(self, wait: bool) -> ArkoudaCluster:
        """Connect to an existing deployment: no object is written."""
        self._progress("preflight", 1, 1, f"found deployment {self.name}")
        if self.kube.get("Pod", self.names.server_pod, self.namespace) is None:
            if self.ownership.creation_under_way(self.timeouts.credentials + self.timeouts.locales):
                return self._join(wait)
            raise DeployError(
                f"deployment {self.name!r} in namespace {self.namespace} has no server pod "
                "(the remains of a failed deploy kept for debugging, or a teardown under way)",
                f"remove it with `arkouda-k8s teardown {self.name} -n {self.namespace}`, "
                "then deploy again",
                stage="server",
                reason="Missing",
                pod=self.names.server_pod,
            )
        if wait:
            self.wait_server(time.monotonic() + self.timeouts.server)
            self.handshake()
        self._start_heartbeat()
        return self

    # -- preflight ---------------------------------------------------------------------------

    def required_access(self) -> list[Access]:
        """Every permission the deploy, status, tunnel and teardown need."""
        return preflight.required_access(self.spec)

    def rbac_yaml(self, missing: Iterable[Access] | None = None) -> str:
        """The RBAC an administrator must apply for the current user."""
        return preflight.rbac_yaml(
            self.spec,
            list(missing) if missing is not None else self.required_access(),
            self.kube.user,
        )

    def preflight(self) -> None:
        """Check, before anything is created, that this deployment can work here.

        Raises PermissionsMissing (every missing permission at once, with the RBAC to
        grant) or PreflightError (Pod Security, quota, capacity). Creates nothing. One
        round trip: the checks (``preflight.check``) are sent side by side.
        """
        self._judge(self._preflight_findings(time.monotonic() + self.timeouts.preflight))

    def _preflight_findings(self, deadline: float) -> Findings:
        self._progress(
            "preflight", 0, 1, "checking permissions, the namespace, quota and node capacity"
        )
        return preflight.check(
            self.kube,
            self.spec,
            self.namespace,
            deadline=deadline,
            create_namespace=self.create_namespace,
        )

    def _judge(self, found: Findings) -> None:
        """Keep what the preflight found that the deploy needs; raise what is fatal
        (``preflight.judge``); report the rest."""
        self.csr_pending_admin = found.approval_by_admin
        self.namespace_missing = found.namespace_missing
        self.warnings = list(found.warnings)
        self._progress(
            "preflight", 1, 1, preflight.judge(found, self.spec, self.kube, self.namespace)
        )

    # -- waiting -----------------------------------------------------------------------------

    def wait_locales(self, deadline: float, since: str | None = None) -> list[dict[str, Any]]:
        """Block until every locale pod is Running with an IP (``Readiness.wait_locales``)."""
        return self.readiness.wait_locales(deadline, since)

    def wait_server(
        self,
        deadline: float,
        since: str | None = None,
        *,
        with_locales: bool = False,
    ) -> dict[str, Any]:
        """Block until the server pod is Ready; typed errors explain a stuck pod
        (``Readiness.wait_server``)."""
        return self.readiness.wait_server(deadline, since, with_locales=with_locales)

    # -- tunnel, handshake, session ----------------------------------------------------------

    def token(self) -> str | None:
        """The server token, read from its Secret (None when authentication is off).

        Held in memory only; the front ends pass it to ak.connect and never print it.
        """
        return self.connection.token()

    def start_tunnel(self, timeout: float = 30.0) -> tuple[str, int]:
        """Start (or restart) the port-forward to the server pod; returns its address."""
        return self.connection.start_tunnel(timeout)

    def use_tunnel(self, address: tuple[str, int], token: str | None) -> None:
        """Reach the server through a tunnel another process holds (the Jupyter server's).

        ``connect()`` binds through it; ``close()`` leaves it running for its holder.
        ``token`` is the deployment's token, so nothing is read from the cluster here.
        """
        self._stop_heartbeat()  # the holder renews it
        self.connection.use_tunnel(address, token)

    def marked_ephemeral(self, deadline: float | None = None) -> bool:
        """Whether the deployment was made with ``ephemeral`` (its state ConfigMap says)."""
        state = read_state(self.kube, self.name, self.namespace, deadline) or {}
        annotations = (state.get("metadata") or {}).get("annotations") or {}
        return annotations.get(EPHEMERAL_ANNOTATION) == "true"

    def handshake(
        self, deadline: float | None = None, *, tunnel_check: bool = True
    ) -> dict[str, Any]:
        """Arkouda's connect + getconfig answered through the tunnel (readiness proof); a
        server that exited at its self-registration is started again when that may help.
        ``tunnel_check=False``: a tunnel started for it skips its own port-forward check
        (the handshake's connection proves as much; ``ServerConnection.handshake``)."""
        if deadline is None:
            deadline = time.monotonic() + self.timeouts.handshake
        restarts = 0

        def retry(deadline: float) -> bool:
            nonlocal restarts
            if not self.readiness.restart_if_exited_at_registration(restarts, deadline):
                return False
            restarts += 1
            return True

        return self.connection.handshake(
            deadline,
            within=self.timeouts.handshake,
            retry=retry,
            log_tail=lambda: self.readiness.log_tail(self.names.server_pod, "arkouda-server"),
            tunnel_check=tunnel_check,
            hint=(
                f" (with --registration server, a leftover Service {self.names.self_service} "
                "or missing RBAC makes the server exit right after it opens its port)"
                if _self_registers(self.spec)
                else ""
            ),
        )

    def connect(self, timeout: float = 10.0) -> Any:
        """The user's ``arkouda`` module, connected through the tunnel (again, after a drop)."""
        return self.connection.connect(timeout)

    def memory_used(self) -> int | None:
        """Bytes the server reports in use (getmemused), through our own probe socket."""
        return self.connection.memory_used()

    # -- status and logs ----------------------------------------------------------------------

    def status(self, probe: bool = True, *, handshake: bool = False) -> ClusterStatus:
        """Pods, tunnel and (when the tunnel is up and ``probe``) the server's own numbers.

        ``handshake``: with no tunnel held and the server pod ready, a short-lived tunnel
        and a handshake read those numbers (memory in use, version) all the same, the way
        every front end shows them; it is stopped before this returns. Its failure is a
        line in ``ClusterStatus.warnings``, not an error: the pods' status still stands.
        The status names no tunnel for it (tunnel None, address None): it is a picture of
        what is held when it returns, and a stopped tunnel's address leads nowhere.
        """
        pods = self.kube.list("Pod", self.namespace, label_selector=self.selector)["items"]
        server = next(
            (
                p
                for p in pods
                if (p["metadata"].get("labels") or {}).get(COMPONENT_LABEL) == "server"
            ),
            None,
        )
        warnings: list[str] = []
        short_lived = False
        if handshake and probe and self.tunnel is None and server and _ready(server):
            try:
                # the handshake's one connection is the short-lived tunnel's only
                # port-forward (no separate check first), the memory read shares it
                self.handshake(deadline=time.monotonic() + STATUS_HANDSHAKE, tunnel_check=False)
            except ArkoudaK8sError as exc:
                warnings.append(exc.one_line())
            short_lived = self.tunnel is not None
        try:
            status = self._status(pods, server, probe, tuple(warnings))
        finally:
            if short_lived:
                self.connection.stop_tunnel()
        if short_lived:
            status = dataclasses.replace(status, address=None, tunnel_state=None)
        return status

    def _status(
        self,
        pods: list[dict[str, Any]],
        server: dict[str, Any] | None,
        probe: bool,
        warnings: tuple[str, ...],
    ) -> ClusterStatus:
        return deployment_status(
            self.kube,
            self.spec,
            pods,
            server,
            address=self.address,
            # a TunnelState, or "shared" for a tunnel borrowed from another process
            tunnel_state=str(self.tunnel.state) if self.tunnel else None,
            version=(self.config or {}).get("arkoudaVersion"),
            numbers=self.connection.numbers if probe else None,
            warnings=warnings,
        )

    def _pod_logs(self) -> PodLogs:
        return PodLogs(self.kube, self.spec, self.namespace, self._secrets_to_mask())

    def locale_pod(self, locale: int) -> tuple[str, str]:
        """(pod, container) of Arkouda locale ``locale``: 0 is the server pod, then the
        locale pods in the launcher's order (``PodLogs.locale_pod``)."""
        return PodLogs(self.kube, self.spec, self.namespace).locale_pod(locale)

    def _secrets_to_mask(self) -> tuple[str, ...]:
        if self.spec.authenticate and self._token is None:
            # Mask the exact token too, not only the `token=` forms the server prints.
            with contextlib.suppress(ArkoudaK8sError):
                self.token()
        return (self._token,) if self._token else ()

    def logs(
        self,
        component: str = "server",
        tail: int | None = None,
        *,
        since: int | None = None,
        timestamps: bool = False,
        previous: bool = False,
        locale: int | None = None,
    ) -> str:
        """Logs of the server (or every locale pod, each headed by its name, or the pod
        of one Arkouda ``locale``); tokens, PEM blocks and the server token masked.

        ``since``: only lines of the last so many seconds; ``previous``: the container
        that ran before the last restart; ``timestamps``: each line starts with its
        RFC 3339 time.
        """
        return self._pod_logs().read(
            component, tail, since=since, timestamps=timestamps, previous=previous, locale=locale
        )

    def follow_logs(
        self,
        component: str = "server",
        tail: int | None = None,
        *,
        since: int | None = None,
        timestamps: bool = False,
        locale: int | None = None,
    ) -> Generator[str, None, None]:
        """Lines of the logs as they are written (masked like ``logs()``), until every
        followed container ends or its pod is deleted; close the iterator to stop early.

        With several pods (``component="locale"``) each line starts with ``[pod] ``.
        """
        return self._pod_logs().follow(
            component, tail, since=since, timestamps=timestamps, locale=locale
        )

    # -- heartbeat, reattach, close, teardown ------------------------------------------------

    def heartbeat(self) -> None:
        """Renew the heartbeat annotation now (the daemon thread calls this)."""
        beat(self.kube, self.name, self.namespace)

    def _start_heartbeat(self, beat_now: bool = True) -> None:
        """``beat_now=False``: the state ConfigMap was just created with a fresh beat."""
        if self._heartbeat is None or not self._heartbeat.is_alive():
            if beat_now:
                with contextlib.suppress(KubeError):
                    self.heartbeat()
            self._heartbeat = Heartbeat(self.heartbeat, self.name, self.heartbeat_interval)
            self._heartbeat.start()

    def _stop_heartbeat(self) -> None:
        hb, self._heartbeat = self._heartbeat, None
        if hb is not None:
            hb.stop()

    def _existing_spec(self, deadline: float | None = None) -> ClusterSpec | None:
        return existing_spec(self.kube, self.name, self.namespace, deadline)

    def _instance_exists(self, deadline: float | None = None) -> bool:
        return instance_exists(self.kube, self.spec, self.namespace, deadline)

    @classmethod
    def from_name(
        cls,
        name: str,
        namespace: str | None = None,
        kubeconfig: str | None = None,
        context: str | None = None,
        *,
        connect: bool = True,
        wait: bool = True,
        kube: Kube | None = None,
        **kwargs: Any,
    ) -> ArkoudaCluster:
        """Reattach to a running deployment (after a kernel restart): tunnel + handshake.

        The spec comes from the deployment's annotation, the token from its Secret.
        ``connect=False`` only finds it (for status, logs, teardown): no tunnel, no
        heartbeat.
        """
        kube = kube or Kube.connect(kubeconfig, context, namespace)
        ns = namespace or kube.namespace
        spec = existing_spec(kube, name, ns)
        if spec is None:
            raise ClusterNotFound(
                f"no arkouda-k8s deployment {name!r} in namespace {ns} ({kube.describe()})",
                "see `arkouda-k8s list -A` for the deployments you can see",
            )
        cluster = cls(spec, kube=kube, mode=DeployMode.CONNECT_ONLY, **kwargs)
        return cluster.deploy(wait=wait) if connect else cluster

    def close(self) -> None:
        """Close the session, the tunnel and the heartbeat; the deployment keeps running."""
        self.connection.close()
        self._stop_heartbeat()

    def teardown(self, wait: bool = True) -> list[tuple[str, str]]:
        """Delete every object of the deployment and (with ``wait``) wait until gone.

        By name, without a cluster object: :func:`~arkouda_k8s.teardown.teardown_named`."""
        self.close()
        self.spec, deleted = teardown.remove(
            self.ownership,
            self.spec,
            timeout=self.timeouts.teardown,
            report=self._progress,
            wait=wait,
        )
        return deleted

    def leftovers(self, deadline: float | None = None) -> list[str]:
        """``Kind/name`` of every object still present that this instance owns (through
        its state ConfigMap), the ConfigMap included, and the Services + Endpoints its
        server registered itself (``{name}-arkouda``, ``{name}-metrics``); empty when it
        has no state ConfigMap."""
        return teardown.leftovers(self.ownership, self.spec, deadline)


# -- helpers -------------------------------------------------------------------------------


def _default_heartbeat(spec: ClusterSpec) -> float:
    if spec.ttl_seconds:
        return max(5.0, min(60.0, spec.ttl_seconds / 4))
    return 60.0


def _readiness_of(cluster: ArkoudaCluster) -> Readiness:
    """The cluster's ``Readiness``, reaching back to the cluster (its progress listeners,
    the token to mask) through a weak reference: the cluster holds its readiness, and a
    cluster its user drops must go at once (``_HELD_TUNNELS`` forgets it then), not at
    the next cycle collection."""
    ref = weakref.ref(cluster)

    def secrets() -> tuple[str, ...]:
        alive = ref()
        return (alive._token,) if alive is not None and alive._token else ()

    return Readiness(
        cluster.kube,
        cluster.spec,
        cluster.timeouts,
        _weak_report(cluster),
        cluster.ownership,
        secrets,
    )


def _weak_report(cluster: ArkoudaCluster) -> Report:
    """The cluster's progress report through a weak reference, for the parts it holds
    (they must not keep a cluster its user dropped alive)."""
    ref = weakref.ref(cluster)

    def report(stage: str, done: int, total: int, message: str, *, note: bool = False) -> None:
        alive = ref()
        if alive is not None:
            alive._progress(stage, done, total, message, note=note)

    return report
