"""The control plane's webhook receiver: one verified MLflow delivery, relayed to every
inference pod.

MLflow knows one URL per webhook; a Service would hand a delivery to one pod. The control plane
verifies the delivery (kernel.webhooks), then sends the same headers and body to each inference
pod it finds in its namespace, straight to the pod's address. Each pod verifies it again with
the same secret, so the relay adds no trust: a pod acts on MLflow's signature, not on ours.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import structlog

from control.settings import ControlSettings
from kernel import webhooks

log = structlog.get_logger("control.webhooks")

# What of a delivery is relayed: the signed parts and the body's type.
RELAYED = (
    webhooks.SIGNATURE_HEADER,
    webhooks.TIMESTAMP_HEADER,
    webhooks.DELIVERY_HEADER,
    "content-type",
)


def targets(settings: ControlSettings) -> list[str]:
    """Base URLs of the inference pods that can take a delivery: the running pods of the
    release in the namespace, by address; MLSTACK_CONTROL_INFERENCE_URL when there is no
    cluster to look in (or it has none)."""
    from control import cluster

    urls: list[str] = []
    try:
        _, core = cluster.clients()
        pods = core.list_namespaced_pod(
            settings.namespace,
            label_selector=cluster.selector(cluster.INFERENCE_SELECTOR, settings.release),
        ).items
    except Exception as exc:  # no kube config, no cluster, no permission: the URL, if any
        log.debug("webhook.no_cluster", error=str(exc).splitlines()[0] if str(exc) else "")
        pods = []
    for pod in pods:
        ip = pod.status.pod_ip if pod.status else None
        if not ip or pod.metadata.deletion_timestamp or pod.status.phase != "Running":
            continue
        port = cluster.http_port(pod)
        if port is not None:
            host = f"[{ip}]" if ":" in ip else ip
            urls.append(f"http://{host}:{port}")
    if not urls and settings.inference_url:
        urls.append(settings.inference_url.rstrip("/"))
    return urls


async def relay(
    urls: list[str], headers: dict[str, str], body: bytes, timeout: float
) -> list[dict[str, Any]]:
    """Send the delivery to every URL at once; each one's status or error."""
    forwarded = {name: headers[name] for name in RELAYED if name in headers}

    async def one(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
        try:
            response = await client.post(url + webhooks.PATH, content=body, headers=forwarded)
        except httpx.HTTPError as exc:
            return {"url": url, "error": f"{type(exc).__name__}: {exc}"}
        return {"url": url, "status": response.status_code}

    async with httpx.AsyncClient(timeout=timeout) as client:
        return list(await asyncio.gather(*(one(client, url) for url in urls)))
