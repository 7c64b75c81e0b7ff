"""A lab in a child process for crash tests: leaves one run paused and one awaiting approval."""

from __future__ import annotations

import json
import sys
import time

import stigmer_nb

PAUSED = """
document: {dsl: '1.0.0', namespace: durability, name: paused, version: '1.0.0'}
do:
  - one: {set: {step: 1}}
  - nap: {wait: {milliseconds: 300}}
  - two: {set: {step: 2}}
"""

APPROVAL = """
document: {dsl: '1.0.0', namespace: durability, name: awaiting, version: '1.0.0'}
do:
  - ask:
      listen: {to: {one: {with: {type: ai.stigmer.approval}}}}
      metadata: {prompt: 'Carry on after the crash?'}
      output: {as: '${ .[0] }'}
  - after: {set: {approved: '${ .approved }', comment: '${ .comment }'}}
"""


def main() -> None:
    lab = stigmer_nb.start(home=sys.argv[1], ui=False)
    paused = lab.run(PAUSED)
    paused.wait(30, until="in_progress")
    paused.pause("before the crash")
    paused.wait(30, until="paused")
    waiting = lab.run(APPROVAL).wait(30, until="approval")
    print(json.dumps({"paused": paused.id, "waiting": waiting.id}), flush=True)
    time.sleep(600)  # the test kills us


if __name__ == "__main__":
    main()
