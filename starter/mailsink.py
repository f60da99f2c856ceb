"""A local SMTP server for the embedded set-up: keeps every message as an .eml file in a
folder and logs one line per message. Production uses a real SMTP relay (or Mailpit)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from email import message_from_bytes, policy
from pathlib import Path

from aiosmtpd.controller import Controller

log = logging.getLogger("mailsink")


class SaveToFolder:
    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        # Fault tests hold the sink before any message data can arrive: while the file
        # ``.hold`` exists in the folder, RCPT is not answered, so a client killed meanwhile
        # leaves nothing behind (a frozen process could still read a finished DATA later).
        while (self.folder / ".hold").exists():
            await asyncio.sleep(0.02)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        name = f"{time.time_ns()}.eml"
        (self.folder / name).write_bytes(envelope.content)
        # Fault tests: while ``.slow-reply`` exists the message is kept but the "250" waits,
        # so a client killed meanwhile never learns that its email was accepted.
        while (self.folder / ".slow-reply").exists():
            await asyncio.sleep(0.02)
        msg = message_from_bytes(envelope.content, policy=policy.default)
        log.info("mail to %s: %s (%s)", ",".join(envelope.rcpt_tos), msg["Subject"], name)
        return "250 Message accepted"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--dir", default=".data/mail")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s mailsink %(message)s")
    controller = Controller(SaveToFolder(Path(args.dir)), hostname=args.host, port=args.port)
    controller.start()
    log.info("SMTP on %s:%s, saving to %s", args.host, args.port, args.dir)
    try:
        asyncio.run(asyncio.Event().wait())
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
