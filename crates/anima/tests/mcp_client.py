#!/usr/bin/env python3
"""Drives Anima's /mcp endpoint with the official MCP Python SDK.

    mcp_client.py tools   URL TOKEN OTHER_KEY   every tool, and a refused
                                                read of another work item
    mcp_client.py refused URL TOKEN REASON      the token no longer works,
                                                for the stated reason

An https:// URL is checked against the CA in ANIMA_CA_CERT when set.

Prints one line per check; exits non-zero on the first failure.
"""

import asyncio
import json
import os
import ssl
import sys

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


# The server's certificate is checked against a private CA when given.
CA = os.environ.get("ANIMA_CA_CERT")
VERIFY = ssl.create_default_context(cafile=CA) if CA else True


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)
    print(f"ok: {what}", flush=True)


def payload(result):
    """The JSON a tool returned, or None for a tool-level error."""
    if result.is_error:
        return None
    return json.loads(result.content[0].text)


async def call(session, tool, arguments):
    """A tool's JSON, or the error text when the server refuses."""
    try:
        result = await session.call_tool(tool, arguments)
    except MCPError as error:
        return None, f"protocol error: {error}"
    data = payload(result)
    if data is None:
        return None, result.content[0].text if result.content else "tool error"
    return data, ""


async def tools(url, token, other_key):
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30, verify=VERIFY) as http:
        async with streamable_http_client(url, http_client=http, terminate_on_close=False) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                names = {tool.name for tool in (await session.list_tools()).tools}
                expected = {
                    "get_work_item", "get_thread", "get_workflow_phase", "post_message",
                    "list_tasks", "create_task", "update_task_status", "request_human_decision",
                    "search_library", "read_document",
                }
                check(expected <= names, f"list_tools offers {sorted(expected)}")
                schema = next(t for t in (await session.list_tools()).tools if t.name == "post_message")
                check("body" in schema.input_schema.get("properties", {}), "post_message has a JSON schema")

                item, _ = await call(session, "get_work_item", {})
                check(item and item["key"] == "WI-1", "get_work_item reads the session's work item")
                resources = (await session.list_resources()).resources
                check(len(resources) == 1, "list_resources offers the work item's description")
                read = await session.read_resource(resources[0].uri)
                check("first draft" in read.contents[0].text, "read_resource returns the description")

                phase, _ = await call(session, "get_workflow_phase", {})
                check(phase and phase["phase"]["required_skills"], "get_workflow_phase lists required skills")
                posted, _ = await call(session, "post_message", {"body": "Hello from the Python SDK"})
                check(posted and posted["sequence"] >= 1, "post_message posts as the session's Akh")
                thread, _ = await call(session, "get_thread", {"page_size": 20})
                bodies = [m["body"] for m in thread["messages"]]
                check("Hello from the Python SDK" in bodies, "get_thread shows the post")
                check(thread["messages"][-1]["author"]["kind"] == "akh", "the post is attributed to the Akh")
                task, _ = await call(session, "create_task", {"title": "Reproduce the bug"})
                check(task and task["status"] == "pending", "create_task")
                updated, _ = await call(session, "update_task_status", {"task_id": task["id"], "status": "done"})
                check(updated and updated["status"] == "done", "update_task_status")
                listed, _ = await call(session, "list_tasks", {})
                check(len(listed["tasks"]) == 1, "list_tasks")
                decision, _ = await call(
                    session, "request_human_decision",
                    {"question": "Ship on Friday?", "input_label": "Yes or no", "choices": ["yes", "no"]},
                )
                check(decision and decision["state"] == "open", "request_human_decision")

                denied, error = await call(session, "get_work_item", {"work_item": other_key})
                check(denied is None and "OUT_OF_SCOPE" in error, f"reading {other_key} is refused: {error}")
                check(not error.startswith("protocol error"), f"the refusal is a tool result the model reads: {error}")
                denied, error = await call(session, "post_message", {"body": "hi", "work_item": other_key})
                check(denied is None and "OUT_OF_SCOPE" in error, "posting to another work item is refused")
                bad, error = await call(session, "get_thread", {"page_size": "lots"})
                check(bad is None and error, f"a wrong argument type is refused: {error}")


async def refused(url, token, reason):
    # The SDK only sees a failed exchange; the body says why.
    async with httpx2.AsyncClient(timeout=30, verify=VERIFY) as http:
        response = await http.post(
            url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json, text/event-stream",
                "Content-Type": "application/json",
            },
            content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}),
        )
        check(response.status_code == 401, f"the endpoint answers 401 (got {response.status_code})")
        check(response.json()["error"]["reason"] == reason, f"the refusal says {reason}")
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx2.AsyncClient(headers=headers, timeout=30, verify=VERIFY) as http:
            async with streamable_http_client(url, http_client=http, terminate_on_close=False) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    await session.call_tool("get_work_item", {})
    except BaseException as error:  # the SDK raises exception groups
        check(True, f"the SDK cannot use the token ({type(error).__name__})")
        return
    check(False, "the SDK cannot use the token")


def main():
    mode, url, token, extra = sys.argv[1:5]
    if mode == "tools":
        asyncio.run(tools(url, token, extra))
    elif mode == "refused":
        asyncio.run(refused(url, token, extra))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
