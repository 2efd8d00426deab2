"""Asks a `hearth serve` Wyoming server's handler, as Home Assistant does once speech is
text: one transcript -> handled per TEXT, on one connection. Uses the official `wyoming`
package (PyPI).

Usage: wyoming_handle.py HOST PORT TEXT [TEXT ...]
Prints one JSON line: {"handled": [the answer to each text]}.
"""
import argparse
import asyncio
import json

from wyoming.client import AsyncTcpClient

import wyoming_common
from wyoming_common import handle

# A turn with a tool call is two rounds of the model; on a loaded test machine the default
# model took over the shared 120 s.
wyoming_common.TIMEOUT = 300


async def main(args):
    answers = []
    async with AsyncTcpClient(args.host, args.port) as client:
        for text in args.texts:
            answers.append(await handle(client, text))
    print(json.dumps({"handled": answers}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("texts", nargs="+")
    asyncio.run(main(parser.parse_args()))
