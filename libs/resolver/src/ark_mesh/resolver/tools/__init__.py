"""Tools an agent can call: HTTP, MCP, agents and teams as tools, built-ins, partials."""

from ark_mesh.resolver.tools.base import Delegate, ToolExecutor, ToolResult
from ark_mesh.resolver.tools.builtin import (
    NOOP,
    SELECT_NEXT_SPEAKER,
    TERMINATE,
    NoopTool,
    SelectNextSpeakerTool,
    TerminateTool,
)
from ark_mesh.resolver.tools.delegate import DelegateTool
from ark_mesh.resolver.tools.http import HTTPTool
from ark_mesh.resolver.tools.mcp import MCPDiscoveryError, MCPTool, MCPToolInfo, list_mcp_tools
from ark_mesh.resolver.tools.partial import PartialTool
from ark_mesh.resolver.tools.registry import ToolSet, tool_from_resource, tools_for_agent

__all__ = [
    "NOOP",
    "SELECT_NEXT_SPEAKER",
    "TERMINATE",
    "Delegate",
    "DelegateTool",
    "HTTPTool",
    "MCPDiscoveryError",
    "MCPTool",
    "MCPToolInfo",
    "NoopTool",
    "PartialTool",
    "SelectNextSpeakerTool",
    "TerminateTool",
    "ToolExecutor",
    "ToolResult",
    "ToolSet",
    "list_mcp_tools",
    "tool_from_resource",
    "tools_for_agent",
]
