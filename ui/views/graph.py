"""Context graph: the neighbourhood of a node, drawn with ECharts; depth and type filters;
click a node to centre on it, or open a trace node's trace."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from ui import theme
from ui.api import ApiError
from ui.page import Page

GRAPH = """query($type: String!, $id: String!, $depth: Int!, $types: [String!]) {
  contextGraph(nodeType: $type, nodeId: $id, maxDepth: $depth, maxNodes: 150, maxEdges: 400,
               nodeTypes: $types) {
    center nodes { nodeId nodeType traceId } edges { edgeId edgeType fromNodeId toNodeId }
    truncated projectedTo }
  projectionHealth { lastLogSeq } }"""
NODE_TYPES = ("trace", "actor", "entity", "input", "policy", "exception", "action")
PALETTE = {
    "trace": theme.INK,
    "actor": theme.SKY,
    "entity": theme.TEAL,
    "input": "#7c3aed",
    "policy": theme.AMBER,
    "exception": theme.CRIMSON,
    "action": "#0891b2",
}


def chart_options(graph: dict[str, Any]) -> dict[str, Any]:
    categories = sorted({n["nodeType"] for n in graph["nodes"]})
    return {
        "tooltip": {"formatter": "{b}"},
        "legend": [{"data": categories, "bottom": 0}],
        "series": [
            {
                "type": "graph",
                "layout": "force",
                "roam": True,
                "draggable": True,
                "force": {"repulsion": 260, "edgeLength": [60, 140]},
                "categories": [
                    {"name": c, "itemStyle": {"color": PALETTE.get(c, theme.INK_SOFT)}}
                    for c in categories
                ],
                "label": {"show": True, "position": "right", "fontSize": 10},
                "edgeLabel": {"show": False},
                "emphasis": {"focus": "adjacency"},
                "edgeSymbol": ["none", "arrow"],
                "lineStyle": {"color": "#94a3b8", "curveness": 0.08},
                "data": [
                    {
                        "id": n["nodeId"],
                        "name": n["nodeId"],
                        "category": categories.index(n["nodeType"]),
                        "symbolSize": 34 if n["nodeId"] == graph["center"] else 18,
                    }
                    for n in graph["nodes"]
                ],
                "links": [
                    {"source": e["fromNodeId"], "target": e["toNodeId"], "name": e["edgeType"]}
                    for e in graph["edges"]
                ],
            }
        ],
    }


async def render(page: Page) -> None:
    center = page.params.get("node") or (f"trace:{page.trace_id}" if page.trace_id else "")
    depth = int(page.params.get("depth") or 2)
    kinds = [k for k in (page.params.get("types") or "").split(",") if k]
    with theme.card("Context graph", classes="w-full"):
        with ui.row().classes("w-full items-end gap-4"):
            ui.label(center or "no centre").classes("dg-mono text-base font-medium")
            ui.space()
            depth_select = ui.select(
                {1: "depth 1", 2: "depth 2", 3: "depth 3", 4: "depth 4"}, value=depth
            ).props("dense outlined")
            type_select = ui.select(
                list(NODE_TYPES), value=kinds, multiple=True, label="node types"
            ).props("dense outlined use-chips")
            type_select.classes("min-w-[260px]")

            def apply() -> None:
                chosen = ",".join(type_select.value or []) or None
                page.go(
                    view="graph", node=center or None, depth=str(depth_select.value), types=chosen
                )

            ui.button("Apply", icon="filter_alt", on_click=apply).props("outline")
        panel = theme.PanelState(empty="This node has no neighbours in the graph.")
    if not center or ":" not in center:
        panel.show(lambda: None, 0, "Select a trace first (Traces), or open a node.")
        return
    node_type, node_id = center.split(":", 1)
    try:
        data = await page.api.query(
            GRAPH, {"type": node_type, "id": node_id, "depth": depth, "types": kinds or None}
        )
    except ApiError as error:
        panel.error(error.message)
        return
    graph = data["contextGraph"]
    panel.stale(data["projectionHealth"]["lastLogSeq"] - graph["projectedTo"])

    def on_click(event: Any) -> None:
        node = str(getattr(event, "name", "") or "")
        if not node:
            return
        if node.startswith("trace:") and node != center:
            page.go(view="graph", trace_id=node.split(":", 1)[1], node=None)
        else:
            page.go(view="graph", node=node)

    def draw() -> None:
        with ui.row().classes("w-full gap-3 text-sm dg-muted"):
            ui.label(f"{len(graph['nodes'])} nodes · {len(graph['edges'])} edges")
            theme.chip(
                "truncated" if graph["truncated"] else "complete",
                "warn" if graph["truncated"] else "good",
            )
            ui.label("click a node to centre on it; a trace node opens that trace")
        ui.echart(chart_options(graph), on_point_click=on_click).classes("w-full h-[560px]").mark(
            "graph-chart"
        )
        with ui.expansion("edges", icon="list").classes("w-full"):
            for edge in graph["edges"]:
                ui.label(f"{edge['fromNodeId']} —{edge['edgeType']}→ {edge['toNodeId']}").classes(
                    "dg-mono text-xs"
                )

    panel.show(draw, len(graph["nodes"]))
