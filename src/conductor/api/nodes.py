"""Routes of the nodes: the listing (`scontrol show node`, `sinfo`), and an administrator's
drain and resume (`scontrol update NodeName=X State=DRAIN Reason=... | RESUME | UNDRAIN`).

The change is the node service's (conductor.services.nodes); this module maps its refusals to
HTTP as every route does (api/app.py): 403 not an administrator, 404 no such node, 409 nothing
to resume, 400 a DRAIN without a reason, 422 a body that breaks its types (naming the field).
"""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import APIRouter, Request

from conductor.api import cluster, models
from conductor.api.auth import CurrentPrincipal
from conductor.api.job_records import iso
from conductor.errors import NotFound
from conductor.services.nodes import NodeService, NodeStateChange
from conductor.store import NodeInfo


class AppContext(cluster.AppContext, Protocol):
    """What these routes use of api.app.AppContext."""

    nodes: NodeService


router = APIRouter(tags=["nodes"])

_ERRORS = models.error_responses(400, 403, 404, 409, 422)


def _ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


@router.get("/nodes", response_model=models.NodeList)
def list_nodes(request: Request) -> Any:
    ctx = _ctx(request)
    return models.NodeList(nodes=[node_record(ctx, n) for n in ctx.store.list_nodes(live_after=ctx.live_after())])


@router.post("/nodes/{name}/state", response_model=models.Node, responses=_ERRORS)
def set_node_state(name: str, body: NodeStateChange, request: Request, principal: CurrentPrincipal) -> Any:
    """scontrol update NodeName=NAME State=DRAIN Reason=... | RESUME | UNDRAIN (administrators).

    DRAIN: no new job starts on the node, its running jobs go on; a reason is required. RESUME:
    the node takes jobs again (409 when it is neither drained nor down). UNDRAIN: clears a
    drain, on any node. Answers the node as `GET /nodes` lists it."""
    ctx = _ctx(request)
    ctx.nodes.set_state(principal, name, body)
    listed = next((n for n in ctx.store.list_nodes(live_after=ctx.live_after()) if n.name == name), None)
    if listed is None:  # gone between the change and the read: the change was made all the same
        raise NotFound(f"Invalid node name specified: '{name[:64]}'", field="name")
    return node_record(ctx, listed)


def node_record(ctx: AppContext, n: NodeInfo) -> models.Node:
    drain = n.drain
    return models.Node(
        name=n.name,
        state=node_state(n.state, n.alloc_cpus, n.cpus),
        reason=n.reason,
        cpus=n.cpus,
        alloc_cpus=n.alloc_cpus,
        free_cpus=n.cpus - n.alloc_cpus,
        cpu_ids=n.cpu_ids,
        cpu_binding=n.cpu_binding,
        memory_mb=n.memory_mb,
        alloc_memory_mb=n.alloc_memory_mb,
        partitions=cluster.node_partitions(ctx, n.name, n.partitions),
        running_jobs=n.running_jobs,
        last_heartbeat=iso(n.last_heartbeat),
        containment=n.containment,
        drained=drain is not None,
        drain_reason=drain.reason if drain is not None else None,
        drain_user=drain.user if drain is not None else None,
        drain_time=iso(drain.time) if drain is not None else None,
    )


def node_state(state: str, alloc: int, cpus: int) -> str:
    """The base state as Slurm names it (a drain is a flag beside it): DOWN, else by the CPUs
    its jobs hold, IDLE, MIXED or ALLOCATED."""
    if state != "UP":
        return state
    if alloc == 0:
        return "IDLE"
    return "ALLOCATED" if alloc >= cpus else "MIXED"
