#!/usr/bin/env python3
"""An agent for the sandbox end-to-end test: inside its sandbox, with no
network, it reaches Anima's MCP endpoint through the forwarding socket
named in /run/anima/mcp.json, with its session's token, and

    reads its work item, creates a task, posts a message as its Akh and
    completes the task.

Prints one line per step; exits non-zero on the first failure.
"""

import asyncio
import json
import sys

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


def step(ok, what):
    print(("ok: " if ok else "FAILED: ") + what, flush=True)
    if not ok:
        sys.exit(1)


async def call(session, tool, arguments):
    result = await session.call_tool(tool, arguments)
    step(not result.is_error, tool)
    return json.loads(result.content[0].text)


async def main():
    with open("/run/anima/mcp.json") as file:
        config = json.load(file)
    transport = httpx2.AsyncHTTPTransport(uds=config["socket"])
    headers = {"Authorization": f"Bearer {config['token']}"}
    async with httpx2.AsyncClient(transport=transport, headers=headers, timeout=30) as http:
        async with streamable_http_client(
            config["endpoint"], http_client=http, terminate_on_close=False
        ) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                item = await call(session, "get_work_item", {})
                task = await call(session, "create_task", {"title": f"Work on {item['key']}"})
                name = config["akh"]["name"]
                await call(session, "post_message", {"body": f"{name} is on {item['key']}"})
                done = await call(
                    session, "update_task_status", {"task_id": task["id"], "status": "done"}
                )
                step(done["status"] == "done", "the task is done")


asyncio.run(main())
