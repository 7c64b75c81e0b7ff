"""A lab in a child process for crash tests: starts runs, reports their ids, then waits to be killed."""

from __future__ import annotations

import json
import sys
import time

import stigmer_nb

DOC = """
document: {dsl: '1.0.0', namespace: durability, name: slow-steps, version: '1.0.0'}
do:
  - one:
      set: {step: 1}
  - nap:
      wait: {seconds: 3}
  - two:
      set: {step: 2}
  - napAgain:
      wait: {seconds: 1}
  - three:
      set: {step: 3, input: '${ $workflow.input }'}
"""


def main() -> None:
    home, runs = sys.argv[1], int(sys.argv[2])
    durable = sys.argv[3] == "durable" if len(sys.argv) > 3 else True
    lab = stigmer_nb.start(home=home, durable=durable, ui=False)
    ids = [lab.run(DOC, input={"i": i}).id for i in range(runs)]
    for eid in ids:  # report once each run is underway
        deadline = time.monotonic() + 30
        while lab.execution(eid).phase != "EXECUTION_IN_PROGRESS" and time.monotonic() < deadline:
            time.sleep(0.05)
    print(json.dumps({"ids": ids, "server_pid": lab.server.pid if lab.server else None}), flush=True)
    time.sleep(600)  # the test kills us


if __name__ == "__main__":
    main()
