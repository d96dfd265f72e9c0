"""The local target as one object: the platform services and the serving runtimes of one state dir."""

from __future__ import annotations

from infra.local.platform import LocalPlatform, Reporter, ServiceStatus
from infra.local.serving import LocalServing
from infra.local.settings import LocalSettings
from kfops.base.errors import KfopsError


class LocalTarget:
    """The local platform (SeaweedFS, MLflow) and the runtimes serving its champion.

    Args:
        settings: Ports, timeouts and the state dir (see :class:`~infra.local.settings.LocalSettings`).
    """

    def __init__(self, settings: LocalSettings | None = None) -> None:
        self.platform = LocalPlatform(settings)
        self.serving = LocalServing(self.platform)

    def up(self, report: Reporter = lambda _message: None) -> list[ServiceStatus]:
        """Start what is not running, then bring back the runtimes of the last deployment.

        Raises:
            KfopsError: A platform service could not start (a runtime that cannot be restored is only reported).
        """
        self.platform.up(report)
        deployed = self.serving.deployed()
        if deployed:
            model = deployed["model"]
            report(f"Restoring serving of {model['name']} version {model['version']}")
            try:
                self.serving.restore()
            except KfopsError as error:
                # The platform itself is fine; say what is not served and go on.
                report(f"[yellow]could not restore serving[/]: {error}")
        return self.platform.status()
