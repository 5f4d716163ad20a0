#!/usr/bin/env python3
"""An agent for the sandbox end-to-end test: inside its sandbox, with no
network, it reaches Anima's MCP endpoint through the forwarding socket
named in /run/anima/mcp.json, with its session's token, and

    reads its work item, creates a task, posts a message as its Akh and
    completes the task; and, when the test left a library.json beside this
    script, finds a document of its project by a paraphrase, reads it, and
    is refused a document of another project (by id and by search).

Prints one line per step; exits non-zero on the first failure.
"""

import asyncio
import json
import os
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


async def use_the_library(session, wanted):
    """Finds the wanted document by what it is about, reads it whole, and
    cannot reach the other project's document."""
    found = await call(session, "search_library", {"query": wanted["paraphrase"]})
    hits = found["hits"]
    step(bool(hits) and hits[0]["title"] == wanted["title"], f"found by meaning: {hits}")
    text = await call(session, "read_document", {"document_id": hits[0]["document_id"]})
    step(wanted["identifier"] in text["text"], "read the document it found")
    found = await call(session, "search_library", {"query": wanted["foreign_identifier"]})
    step(
        all(hit["document_id"] != wanted["foreign_id"] for hit in found["hits"]),
        "nothing of another project is found",
    )
    refused = await session.call_tool("read_document", {"document_id": wanted["foreign_id"]})
    step(
        refused.is_error and "OUT_OF_SCOPE" in refused.content[0].text,
        f"another project's document is refused: {refused.content[0].text}",
    )


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
                wanted = os.path.join(os.path.dirname(os.path.abspath(__file__)), "library.json")
                if os.path.exists(wanted):
                    with open(wanted) as file:
                        wanted = json.load(file)
                    await use_the_library(session, wanted)
                    name = config["akh"]["name"]
                    await call(session, "post_message", {"body": f"{name} read {wanted['title']}"})
                task = await call(session, "create_task", {"title": f"Work on {item['key']}"})
                name = config["akh"]["name"]
                await call(session, "post_message", {"body": f"{name} is on {item['key']}"})
                done = await call(
                    session, "update_task_status", {"task_id": task["id"], "status": "done"}
                )
                step(done["status"] == "done", "the task is done")


asyncio.run(main())
