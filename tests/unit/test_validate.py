"""DSL validation: valid documents pass; every rule reports its pointer, line, column and message."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from stigmer_nb.dsl.document import load_source
from stigmer_nb.dsl.validate import check_document, iter_tasks, validate_document
from stigmer_nb.errors import DSLValidationError

HEADER = "document: {dsl: '1.0.0', namespace: tests, name: wf, version: '1.0.0'}\n"
"""Line 1 of every test document; ``do:`` is line 2 and the first task line 3, column 3."""


def _tasks(tasks: str, *, top: str = "") -> str:
    """A document whose ``do`` holds ``tasks`` (first task on line 3 unless ``top`` adds lines)."""
    body = textwrap.indent(textwrap.dedent(tasks).strip("\n"), "  ")
    return HEADER + textwrap.dedent(top).lstrip("\n") + "do:\n" + body + "\n"


def _problems(text: str) -> list[dict[str, Any]]:
    return check_document(load_source(text))


def _assert_problem(text: str, instance: str, line: int, column: int, detail: str) -> None:
    """Exactly one problem, with this pointer, position and message (a trailing … matches a prefix)."""
    problems = _problems(text)
    assert len(problems) == 1, [p["detail"] for p in problems]
    found = problems[0]
    assert (found["instance"], found.get("line"), found.get("column")) == (instance, line, column), found
    if detail.endswith("…"):
        assert found["detail"].startswith(detail[:-1]), found["detail"]
    else:
        assert found["detail"] == detail
    assert found["type"] == "https://serverlessworkflow.io/spec/1.0.0/errors/validation"
    assert found["status"] == 400


def _case(case_id: str, text: str, where: str, detail: str) -> Any:
    """A failing case: ``where`` is ``"<JSON pointer> <line>:<column>"``."""
    pointer, position = where.rsplit(" ", 1)
    line, column = (int(n) for n in position.split(":"))
    return pytest.param(text, pointer, line, column, detail, id=case_id)


# --- valid documents, one or more per task type ----------------------------------------------

VALID = {
    "call-http": """
        - getPet:
            call: http
            with:
              method: get
              endpoint: http://127.0.0.1:1/pets/{id}
              headers: {Accept: application/json}
              query: '${ {limit: .limit} }'
              output: response
              redirect: true
        - postPet:
            call: http
            with:
              method: POST
              endpoint:
                uri: ${ "http://127.0.0.1:1/pets/" + .id }
                authentication: {bearer: {token: '${ $secrets.TOKEN }'}}
              body: {name: '${ .name }', tags: [a, '${ .tag }']}
        """,
    "call-openapi": """
        - findPets:
            call: openapi
            with:
              document: {endpoint: http://127.0.0.1:1/openapi.json}
              operationId: findPetsByStatus
              parameters: {status: available}
              output: content
        """,
    "call-agent-activity-function": """
        - review:
            call: agent
            with: {agent: code-reviewer, message: '${ "Review " + .pr }', scope: platform, env: {A: b}, config: {model: m}}
        - score:
            call: activity
            with: {name: score_lead, input: {email: '${ .email }'}}
        - registeredAtRunTime:
            call: my_python_function
            with: {x: 1}
        - noArguments:
            call: another_function
        """,
    "do-and-flow": """
        - start:
            set: {n: 0}
        - step:
            do:
              - inc:
                  set: {n: '${ .n + 1 }'}
              - stop:
                  set: '${ . }'
                  then: exit
        - again:
            set: '${ . }'
            if: ${ .n < 3 }
            then: step
        - done:
            set: {n: '${ .n }'}
            then: end
        """,
    "emit": """
        - announce:
            emit:
              event:
                with:
                  type: com.example.order.placed
                  source: https://example.com/orders
                  data: {id: '${ .id }'}
        """,
    "for": """
        - loop:
            for: {each: pet, in: .pets, at: i}
            while: ${ $i < 10 }
            do:
              - visit:
                  set: {name: '${ $pet.name }', at: '${ $i }'}
        - defaults:
            for: {in: '${ .items }'}
            do:
              - use:
                  set: {item: '${ $item }', index: '${ $index }'}
        """,
    "fork": """
        - race:
            fork:
              compete: true
              branches:
                - left:
                    set: {side: left}
                - right:
                    wait: PT1S
        """,
    "listen": """
        - one:
            listen:
              to:
                one: {with: {type: com.example.approved}}
              read: envelope
        - many:
            listen:
              to:
                any:
                  - with: {type: com.example.reading, data: '${ .temperature > 38 }'}
                until: ${ length >= 3 }
            foreach:
              item: reading
              do:
                - keep:
                    set: {value: '${ $reading }'}
              output: {as: '${ $reading.data }'}
        - all:
            listen:
              to:
                all:
                  - with: {type: a}
                  - with: {type: b}
        - anyUntilEvent:
            listen:
              to:
                any: []
                until: {one: {with: {type: stop}}}
        """,
    "raise": """
        - inline:
            raise:
              error:
                type: https://serverlessworkflow.io/spec/1.0.0/errors/validation
                status: 400
                title: Bad input
                detail: ${ "missing " + .field }
        - named:
            raise: {error: notFound}
        """,
    "run": """
        - shell:
            run:
              shell: {command: echo, arguments: {a: b}, environment: {X: '1'}}
              return: all
        - script:
            run:
              script: {language: python, code: 'print(1)'}
              await: false
        - scriptFromSource:
            run:
              script: {language: javascript, source: {endpoint: http://127.0.0.1:1/s.js}}
        - subflow:
            run:
              workflow: {namespace: tests, name: child, version: '1.0.0', input: {x: '${ .x }'}}
        """,
    "set": """
        - map:
            set: {a: 1, b: '${ .a }', nested: {c: ['${ $context }']}}
        - expression:
            set: '${ {total: (.a + 1)} }'
        """,
    "switch": """
        - route:
            switch:
              - big: {when: .amount > 100, then: bigOne}
              - wrapped: {when: '${ .amount > 10 }', then: continue}
              - otherwise: {then: end}
        - bigOne:
            set: {big: true}
        """,
    "try": """
        - guarded:
            try:
              - call:
                  call: http
                  with: {method: get, endpoint: http://127.0.0.1:1/x}
            catch:
              errors:
                with: {type: https://serverlessworkflow.io/spec/1.0.0/errors/communication, status: 503}
              as: failure
              when: $failure.status == 503
              exceptWhen: ${ $failure.title == "fatal" }
              retry:
                delay: {seconds: 1}
                backoff: {exponential: {}}
                limit: {attempt: {count: 3, duration: PT1M}, duration: {minutes: 5}}
                jitter: {from: {milliseconds: 10}, to: PT1S}
                when: ${ $failure.status != 400 }
              do:
                - recover:
                    set: {error: '${ $failure }'}
        - named:
            try:
              - x: {set: {a: 1}}
            catch:
              retry: again
        - catchAll:
            try:
              - y: {raise: {error: notFound}}
            catch: {}
        """,
    "wait": """
        - object:
            wait: {seconds: 1, milliseconds: 500}
        - iso:
            wait: PT1M30S
        - expression:
            wait: ${ .delay }
        """,
    "common-fields": """
        - shaped:
            if: .enabled
            input:
              schema: {format: json, document: {type: object, required: [a]}}
              from: '${ {a: .a} }'
            output:
              schema: {document: {type: object}}
              as: .a
            export:
              as: '$context + {a: .}'
            timeout: {after: PT10S}
            metadata: {owner: team}
            set: {a: '${ $input.a }'}
        - namedTimeout:
            set: {b: 2}
            timeout: short
        """,
}

USE = """
use:
  errors:
    notFound: {type: https://example.com/errors/not-found, status: 404}
  retries:
    again: {delay: PT1S, limit: {attempt: {count: 2}}, when: '$error.status >= 500'}
  timeouts:
    short: {after: {seconds: 5}}
  authentications:
    token: {bearer: {token: abc}}
  functions:
    double:
      set: {value: '${ .value * 2 }'}
  secrets: [TOKEN]
"""


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_task_types(name: str) -> None:
    text = _tasks(VALID[name], top=USE)
    assert _problems(text) == []
    assert validate_document(load_source(text)).data["do"]


def test_valid_workflow_level_fields() -> None:
    text = HEADER + textwrap.dedent(
        """
            input:
              schema: {document: {type: object}}
              from: '${ . + {started: true} }'
            output: {as: '.result'}
            timeout: {after: {minutes: 5}}
            schedule: {every: PT1H}
            evaluate: {language: jq, mode: strict}
            use:
              functions:
                double:
                  set: {value: '${ .value * 2 }'}
            do:
              - twice:
                  call: double
                  with: {value: 2}
            """
    ).lstrip("\n")
    assert _problems(text) == []


def test_the_shipped_example_is_valid() -> None:
    example = Path(__file__).parents[2] / "examples" / "hello.yaml"
    assert _problems(example.read_text()) == []


# --- one failing case per rule ---------------------------------------------------------------

TASK_CASES = [
    # task lists and task types
    _case(
        "item-with-two-keys",
        """
        - first:
          set: {a: 1}
        """,
        "/do/0 3:5",
        "each item of a task list is a single-key map `- name: {task}`; this one has 2 keys (first, "
        "set); indent the task's body under its name",
    ),
    _case(
        "duplicate-names",
        """
        - same: {set: {a: 1}}
        - same: {set: {a: 2}}
        """,
        "/do/1/same 4:5",
        "duplicate task name 'same' (also item 0)",
    ),
    _case(
        "no-type-typo",
        """
        - getPet:
            cal: http
        """,
        "/do/0/getPet 3:5",
        "task 'getPet' has no task type (one of call, do, emit, for, fork, listen, raise, run, set, "
        "switch, try, wait); did you mean 'call'?",
    ),
    _case(
        "parallel-hint",
        """
        - both:
            parallel:
              - a: {set: {}}
        """,
        "/do/0/both 3:5",
        "task 'both' has no task type (one of call, do, emit, for, fork, listen, raise, run, set, "
        "switch, try, wait); to run tasks in parallel use `fork: {branches: [...]}`",
    ),
    _case(
        "two-types",
        """
        - confused:
            call: f
            set: {a: 1}
        """,
        "/do/0/confused 3:5",
        "task 'confused' has more than one task type (call, set); split it into tasks",
    ),
    _case(
        "unknown-task-property",
        """
        - a:
            set: {a: 1}
            thne: end
        """,
        "/do/0/a/thne 5:7",
        "unknown property 'thne' in task 'a' (set); did you mean 'then'?",
    ),
    _case(
        "when-means-if",
        """
        - a:
            set: {a: 1}
            when: .x
        """,
        "/do/0/a/when 5:7",
        "unknown property 'when' in task 'a' (set); to run a task only sometimes use `if`",
    ),
    _case(
        "empty-list",
        """
        - a:
            do: []
        """,
        "/do/0/a/do 4:7",
        "a task list must be a non-empty list of `- name: {task}` items",
    ),
    # call
    _case(
        "http-without-with",
        """
        - getPet:
            call: http
        """,
        "/do/0/getPet 3:5",
        "call: http needs `with`: {method, endpoint}",
    ),
    _case(
        "http-endpoint-typo",
        """
        - getPet:
            call: http
            with:
              method: get
              endpiont: http://127.0.0.1:1/pets
        """,
        "/do/0/getPet/with/endpiont 7:9",
        "unknown property 'endpiont' in the `with` of call: http; did you mean 'endpoint'?",
    ),
    _case(
        "http-url-hint",
        """
        - getPet:
            call: http
            with: {method: get, url: 'http://127.0.0.1:1/pets'}
        """,
        "/do/0/getPet/with/url 5:27",
        "unknown property 'url' in the `with` of call: http; the address goes in `endpoint` (a URL "
        "string or {uri, authentication})",
    ),
    _case(
        "http-without-method",
        """
        - getPet:
            call: http
            with: {endpoint: 'http://127.0.0.1:1/pets'}
        """,
        "/do/0/getPet/with 5:7",
        "call: http `with` needs `method`",
    ),
    _case(
        "http-method",
        """
        - getPet:
            call: http
            with: {method: gett, endpoint: 'http://127.0.0.1:1/pets'}
        """,
        "/do/0/getPet/with/method 5:14",
        "'gett' is not an HTTP method; did you mean 'get'?",
    ),
    _case(
        "http-output",
        """
        - getPet:
            call: http
            with: {method: get, endpoint: 'http://127.0.0.1:1', output: json}
        """,
        "/do/0/getPet/with/output 5:59",
        "output must be one of content, response, raw, not 'json'",
    ),
    _case(
        "http-redirect",
        """
        - getPet:
            call: http
            with: {method: get, endpoint: 'http://127.0.0.1:1', redirect: 'yes'}
        """,
        "/do/0/getPet/with/redirect 5:59",
        "redirect must be true or false, not 'yes'",
    ),
    _case(
        "http-authentication-name",
        """
        - getPet:
            call: http
            with:
              method: get
              endpoint: {uri: 'http://127.0.0.1:1', authentication: tokn}
        """,
        "/do/0/getPet/with/endpoint/authentication 7:47",
        "no 'tokn' in use.authentications; did you mean 'token'?",
    ),
    _case(
        "http-authentication-use",
        """
        - getPet:
            call: http
            with:
              method: get
              endpoint: {uri: 'http://127.0.0.1:1', authentication: {use: nope}}
        """,
        "/do/0/getPet/with/endpoint/authentication/use 7:64",
        "no 'nope' in use.authentications",
    ),
    _case(
        "openapi-operation",
        """
        - find:
            call: openapi
            with: {document: {endpoint: 'http://127.0.0.1:1/o.json'}}
        """,
        "/do/0/find/with 5:7",
        "call: openapi `with` needs `operationId`",
    ),
    _case(
        "agent-message",
        """
        - review:
            call: agent
            with: {agent: code-reviewer}
        """,
        "/do/0/review/with 5:7",
        "call: agent `with` needs `message`",
    ),
    _case(
        "activity-name",
        """
        - score:
            call: activity
            with: {activity: score_lead}
        """,
        "/do/0/score/with/activity 5:14",
        "unknown property 'activity' in the `with` of call: activity; use `name`",
    ),
    _case(
        "function-with",
        """
        - custom:
            call: my_function
            with: [1, 2]
        """,
        "/do/0/custom/with 5:7",
        "the `with` of call: my_function must be a mapping, not a list",
    ),
    # emit
    _case(
        "emit-type",
        """
        - announce:
            emit:
              event:
                with: {source: https://example.com}
        """,
        "/do/0/announce/emit/event/with 6:11",
        "emit.event.with needs `type`",
    ),
    _case(
        "emit-with",
        """
        - announce:
            emit:
              event: {type: com.example.x}
        """,
        "/do/0/announce/emit/event 5:9",
        "emit.event needs `with`: the event's attributes {type, source, data, ...}",
    ),
    # for
    _case(
        "for-in",
        """
        - loop:
            for: {each: pet}
            do: [{a: {set: {}}}]
        """,
        "/do/0/loop/for 4:7",
        "for (the list to loop over) needs `in`",
    ),
    _case(
        "for-each-identifier",
        """
        - loop:
            for: {each: my-pet, in: .pets}
            do: [{a: {set: {}}}]
        """,
        "/do/0/loop/for/each 4:13",
        "for.each 'my-pet' must be a name jq accepts as $name: letters, digits and _",
    ),
    _case(
        "for-at-shadows",
        """
        - loop:
            for: {at: input, in: .pets}
            do: [{a: {set: {}}}]
        """,
        "/do/0/loop/for/at 4:13",
        "for.at 'input' would hide $input; pick another name",
    ),
    _case(
        "for-do",
        """
        - loop:
            for: {in: .pets}
        """,
        "/do/0/loop 3:5",
        "for needs a `do` list beside `for`",
    ),
    _case(
        "loop-variable-out-of-scope",
        """
        - loop:
            for: {each: pet, in: .pets}
            do:
              - visit: {set: {name: '${ $pet.name }'}}
        - after:
            set: {last: '${ $pet }'}
        """,
        "/do/1/after/set/last 8:13",
        "jq does not compile: $pet is not defined at <top-level>, line 1, column 1; loop and catch "
        "variables ($item, $index, $error, or their `each`/`at`/`as` names) exist only inside their task",
    ),
    _case(
        "renamed-loop-variable",
        """
        - loop:
            for: {each: pet, in: .pets}
            do:
              - visit: {set: {name: '${ $item }'}}
        """,
        "/do/0/loop/do/0/visit/set/name 6:25",
        "jq does not compile: $item is not defined…",
    ),
    _case(
        "misspelled-argument",
        """
        - a:
            set: {x: '${ $contxt }'}
        """,
        "/do/0/a/set/x 4:13",
        "jq does not compile: $contxt is not defined at <top-level>, line 1, column 1; did you mean "
        "'context'?",
    ),
    # fork
    _case(
        "fork-branches",
        """
        - both:
            fork: {compete: true}
        """,
        "/do/0/both/fork 4:7",
        "fork (a list of `- name: {task}`) needs `branches`",
    ),
    _case(
        "fork-compete",
        """
        - both:
            fork: {branches: [{a: {set: {}}}], compete: 'no'}
        """,
        "/do/0/both/fork/compete 4:42",
        "fork.compete must be true or false, not 'no'",
    ),
    # listen
    _case(
        "listen-one-strategy",
        """
        - wait:
            listen:
              to: {one: {with: {type: a}}, any: []}
        """,
        "/do/0/wait/listen/to 5:9",
        "listen.to needs exactly one of one, any, all (found one, any)",
    ),
    _case(
        "listen-until",
        """
        - wait:
            listen:
              to: {all: [{with: {type: a}}], until: .done}
        """,
        "/do/0/wait/listen/to/until 5:40",
        "`until` goes only with `any`",
    ),
    _case(
        "listen-read",
        """
        - wait:
            listen:
              to: {one: {with: {type: a}}}
              read: body
        """,
        "/do/0/wait/listen/read 6:9",
        "listen.read must be one of data, envelope, raw, not 'body'",
    ),
    _case(
        "listen-correlate",
        """
        - wait:
            listen:
              to: {one: {with: {type: a}, correlate: {order: {expect: 1}}}}
        """,
        "/do/0/wait/listen/to/one/correlate/order 5:49",
        "correlation 'order' needs `from` (jq on the event, e.g. .data.orderId)",
    ),
    # raise
    _case(
        "raise-message",
        """
        - fail:
            raise:
              error: {type: https://example.com/e, message: oops, status: 500}
        """,
        "/do/0/fail/raise/error/message 5:46",
        "unknown property 'message' in an error; use `detail`",
    ),
    _case(
        "raise-status",
        """
        - fail:
            raise:
              error: {type: https://example.com/e}
        """,
        "/do/0/fail/raise/error 5:9",
        "an error needs `status`",
    ),
    _case(
        "raise-named",
        """
        - fail:
            raise: {error: notFund}
        """,
        "/do/0/fail/raise/error 4:15",
        "no 'notFund' in use.errors; did you mean 'notFound'?",
    ),
    # run
    _case(
        "run-one-process",
        """
        - go:
            run:
              shell: {command: ls}
              script: {language: python, code: x}
        """,
        "/do/0/go/run 4:7",
        "run needs exactly one of shell, script, workflow, container (found shell, script)",
    ),
    _case(
        "run-script-language",
        """
        - go:
            run:
              script: {language: pyhton, code: 'print(1)'}
        """,
        "/do/0/go/run/script/language 5:18",
        "run.script.language must be one of python, javascript, not 'pyhton'; did you mean 'python'?",
    ),
    _case(
        "run-script-code",
        """
        - go:
            run:
              script: {language: python}
        """,
        "/do/0/go/run/script 5:9",
        "run.script needs exactly one of `code` and `source`",
    ),
    _case(
        "run-workflow-name",
        """
        - go:
            run:
              workflow: {namespace: tests}
        """,
        "/do/0/go/run/workflow 5:9",
        "run.workflow needs `name`",
    ),
    _case(
        "run-shell-command",
        """
        - go:
            run:
              shell: {arguments: [a]}
        """,
        "/do/0/go/run/shell 5:9",
        "run.shell needs `command`",
    ),
    _case(
        "run-return",
        """
        - go:
            run:
              shell: {command: ls}
              return: output
        """,
        "/do/0/go/run/return 6:9",
        "run.return must be one of stdout, stderr, code, all, none, not 'output'",
    ),
    _case(
        "run-await",
        """
        - go:
            run:
              shell: {command: ls}
              await: 'no'
        """,
        "/do/0/go/run/await 6:9",
        "run.await must be true or false, not 'no'",
    ),
    # set
    _case(
        "set-plain-string",
        """
        - a:
            set: hello
        """,
        "/do/0/a/set 4:7",
        "set must be a mapping or a ${ } expression; a plain string would be jq",
    ),
    _case(
        "set-list",
        """
        - a:
            set: [1, 2]
        """,
        "/do/0/a/set 4:7",
        "set must be a mapping (or one ${ } expression), not a list",
    ),
    # switch
    _case(
        "switch-defaults",
        """
        - route:
            switch:
              - a: {then: end}
              - b: {then: exit}
        """,
        "/do/0/route/switch 4:7",
        "at most one switch case may omit `when` (the default); found a, b",
    ),
    _case(
        "switch-then",
        """
        - route:
            switch:
              - a: {when: .x}
        """,
        "/do/0/route/switch/0/a 5:11",
        "switch case 'a' needs `then`",
    ),
    _case(
        "switch-target",
        """
        - route:
            switch:
              - a: {when: .x, then: handel}
        - handle:
            set: {}
        """,
        "/do/0/route/switch/0/a/then 5:25",
        "then: 'handel' is not a task in this list; did you mean 'handle'?",
    ),
    _case(
        "switch-when-jq",
        """
        - route:
            switch:
              - a: {when: '.x ==', then: end}
        """,
        "/do/0/route/switch/0/a/when 5:15",
        "jq does not compile: syntax error, unexpected end of file…",
    ),
    # try
    _case(
        "try-catch",
        """
        - guarded:
            try:
              - a: {set: {}}
        """,
        "/do/0/guarded 3:5",
        "try needs a `catch` beside it (an empty `catch: {}` catches every error)",
    ),
    _case(
        "retry-named",
        """
        - guarded:
            try: [{a: {set: {}}}]
            catch: {retry: agian}
        """,
        "/do/0/guarded/catch/retry 5:15",
        "no 'agian' in use.retries; did you mean 'again'?",
    ),
    _case(
        "retry-delay",
        """
        - guarded:
            try: [{a: {set: {}}}]
            catch:
              retry: {delay: 5s}
        """,
        "/do/0/guarded/catch/retry/delay 6:17",
        "retry.delay: '5s' is not an ISO 8601 duration like PT30S, PT1H or P1DT2H",
    ),
    _case(
        "retry-backoff",
        """
        - guarded:
            try: [{a: {set: {}}}]
            catch:
              retry: {backoff: {linear: {}, exponential: {}}}
        """,
        "/do/0/guarded/catch/retry/backoff 6:17",
        "retry.backoff needs exactly one of constant, linear, exponential (e.g. `exponential: {}`)",
    ),
    _case(
        "retry-limit",
        """
        - guarded:
            try: [{a: {set: {}}}]
            catch:
              retry: {limit: {attempt: {count: -1}}}
        """,
        "/do/0/guarded/catch/retry/limit/attempt/count 6:35",
        "retry.limit.attempt.count must be a whole number ≥ 0, not -1",
    ),
    _case(
        "retry-jitter",
        """
        - guarded:
            try: [{a: {set: {}}}]
            catch:
              retry: {jitter: {from: PT1S}}
        """,
        "/do/0/guarded/catch/retry/jitter 6:17",
        "retry.jitter needs `to`",
    ),
    _case(
        "catch-as-renames-error",
        """
        - guarded:
            try: [{a: {set: {}}}]
            catch:
              as: failure
              when: $error.status == 500
        """,
        "/do/0/guarded/catch/when 7:9",
        "jq does not compile: $error is not defined…",
    ),
    _case(
        "catch-errors-with",
        """
        - guarded:
            try: [{a: {set: {}}}]
            catch:
              errors: {with: {type: x, stauts: 500}}
        """,
        "/do/0/guarded/catch/errors/with/stauts 6:34",
        "unknown property 'stauts' in catch.errors.with; did you mean 'status'?",
    ),
    # wait
    _case(
        "wait-number",
        """
        - pause:
            wait: 5
        """,
        "/do/0/pause/wait 4:7",
        "wait needs units: write {seconds: 5} or PT5S",
    ),
    _case(
        "wait-object",
        """
        - pause:
            wait: {secs: 5}
        """,
        "/do/0/pause/wait 4:7",
        "wait: unknown duration field(s) ['secs']; use days, hours, minutes, seconds, milliseconds",
    ),
    _case(
        "wait-expression",
        """
        - pause:
            wait: ${ .delay +  }
        """,
        "/do/0/pause/wait 4:7",
        "jq does not compile: syntax error…",
    ),
    # properties every task has
    _case(
        "if-jq",
        """
        - a:
            set: {}
            if: .x ===
        """,
        "/do/0/a/if 5:7",
        "jq does not compile: syntax error…",
    ),
    _case(
        "input-from-jq",
        """
        - a:
            set: {}
            input: {from: '{a: }'}
        """,
        "/do/0/a/input/from 5:15",
        "jq does not compile: syntax error…",
    ),
    _case(
        "output-as-jq",
        """
        - a:
            set: {}
            output: {as: '${ .a | }'}
        """,
        "/do/0/a/output/as 5:16",
        "jq does not compile: syntax error…",
    ),
    _case(
        "export-as-jq",
        """
        - a:
            set: {}
            export: {as: '$context + $outptu'}
        """,
        "/do/0/a/export/as 5:16",
        "jq does not compile: $outptu is not defined at <top-level>, line 1, column 12; did you mean "
        "'output'?",
    ),
    _case(
        "timeout-named",
        """
        - a:
            set: {}
            timeout: shrt
        """,
        "/do/0/a/timeout 5:7",
        "no 'shrt' in use.timeouts; did you mean 'short'?",
    ),
    _case(
        "timeout-after",
        """
        - a:
            set: {}
            timeout: {seconds: 5}
        """,
        "/do/0/a/timeout/seconds 5:17",
        "unknown property 'seconds' in timeout; the duration goes under `after`, e.g. `timeout: {after: "
        "{seconds: 30}}`",
    ),
    _case(
        "then-target",
        """
        - a:
            set: {}
            then: b
        """,
        "/do/0/a/then 5:7",
        "then: 'b' is not a task in this list",
    ),
    _case(
        "then-other-list",
        """
        - outer:
            do:
              - inner: {set: {}, then: sibling}
        - sibling:
            set: {}
        """,
        "/do/0/outer/do/0/inner/then 5:28",
        "then: 'sibling' is not a task in this list",
    ),
    _case(
        "metadata",
        """
        - a:
            set: {}
            metadata: [x]
        """,
        "/do/0/a/metadata 5:7",
        "metadata must be a mapping, not a list",
    ),
    _case(
        "input-schema",
        """
        - a:
            set: {}
            input:
              schema: {document: {type: objekt}}
        """,
        "/do/0/a/input/schema 6:9",
        "invalid JSON Schema at /type: 'objekt' is not valid under any of the given schemas",
    ),
    _case(
        "schema-resource",
        """
        - a:
            set: {}
            output:
              schema: {resource: {endpoint: 'http://127.0.0.1:1/s.json'}}
        """,
        "/do/0/a/output/schema/resource 6:18",
        "external schemas are not supported; put the schema under `document`",
    ),
    # expressions nested in arguments
    _case(
        "nested-expression",
        """
        - a:
            call: http
            with:
              method: get
              endpoint: 'http://127.0.0.1:1'
              headers: {X-Id: '${ .id | }'}
        """,
        "/do/0/a/with/headers/X-Id 8:19",
        "jq does not compile: syntax error…",
    ),
    _case(
        "unterminated-expression",
        """
        - a:
            set: {x: '${ .id '}
        """,
        "/do/0/a/set/x 4:13",
        "this ${ expression has no closing }",
    ),
]


@pytest.mark.parametrize(("tasks", "instance", "line", "column", "detail"), TASK_CASES)
def test_task_rules(tasks: str, instance: str, line: int, column: int, detail: str) -> None:
    _assert_problem(_tasks(tasks, top=USE), instance, line + USE.count("\n") - 1, column, detail)


DOC_CASES = [
    _case(
        "dsl",
        "document: {dsl: '0.9', namespace: tests, name: wf, version: '1.0.0'}\ndo: [{a: {set: {}}}]\n",
        "/document/dsl 1:12",
        "dsl '0.9' is not supported; use 1.0.0 to 1.0.3",
    ),
    _case(
        "namespace",
        "document: {dsl: '1.0.0', namespace: My_Tests, name: wf, version: '1.0.0'}\ndo: [{a: {set: {}}}]\n",
        "/document/namespace 1:26",
        "document.namespace 'My_Tests' must be letters, digits and '-' (at most 63), starting and ending "
        "with a letter or digit",
    ),
    _case(
        "version",
        "document: {dsl: '1.0.0', namespace: tests, name: wf, version: 1.0}\ndo: [{a: {set: {}}}]\n",
        "/document/version 1:54",
        "document.version 1.0 must be a semantic version like '1.0.0'",
    ),
    _case(
        "document-typo",
        "document: {dsl: '1.0.0', namspace: tests, name: wf, version: '1.0.0'}\ndo: [{a: {set: {}}}]\n",
        "/document/namspace 1:26",
        "unknown property 'namspace' in `document`; did you mean 'namespace'?",
    ),
    _case(
        "no-document",
        "do: [{a: {set: {}}}]\n",
        "/ 1:1",
        "the document needs `document`: {dsl, namespace, name, version}",
    ),
    _case(
        "no-do",
        HEADER,
        "/ 1:1",
        "the document needs `do`: a list of tasks",
    ),
    _case(
        "top-level-typo",
        HEADER + "do: [{a: {set: {}}}]\noutptu: {as: .}\n",
        "/outptu 3:1",
        "unknown property 'outptu' in the workflow document; did you mean 'output'?",
    ),
    _case(
        "evaluate-loose",
        HEADER + "evaluate: {mode: loose}\ndo: [{a: {set: {}}}]\n",
        "/evaluate/mode 2:12",
        "evaluate.mode loose is not supported; wrap expressions in ${ }",
    ),
    _case(
        "schedule",
        HEADER + "schedule: {every: 1h}\ndo: [{a: {set: {}}}]\n",
        "/schedule/every 2:12",
        "schedule.every: '1h' is not an ISO 8601 duration like PT30S, PT1H or P1DT2H",
    ),
    _case(
        "workflow-input",
        HEADER + "input: {from: '.a |'}\ndo: [{a: {set: {}}}]\n",
        "/input/from 2:9",
        "jq does not compile: syntax error…",
    ),
    _case(
        "use-errors",
        HEADER + "use:\n  errors:\n    e: {status: 500}\ndo: [{a: {set: {}}}]\n",
        "/use/errors/e 4:5",
        "an error (a URI such as https://serverlessworkflow.io/spec/1.0.0/errors/runtime) needs `type`",
    ),
    _case(
        "use-retries",
        HEADER + "use:\n  retries:\n    r: {delay: soon}\ndo: [{a: {set: {}}}]\n",
        "/use/retries/r/delay 4:9",
        "retry.delay: 'soon' is not an ISO 8601 duration like PT30S, PT1H or P1DT2H",
    ),
    _case(
        "use-functions",
        HEADER + "use:\n  functions:\n    f: {set: {x: '${ $item }'}}\ndo: [{a: {call: f}}]\n",
        "/use/functions/f/set/x 4:15",
        "jq does not compile: $item is not defined…",
    ),
    _case(
        "use-authentications",
        HEADER + "use:\n  authentications:\n    a: {basic: {}, bearer: {}}\ndo: [{a: {set: {}}}]\n",
        "/use/authentications/a 4:5",
        "an authentication policy has exactly one of basic, bearer, certificate, digest, oauth2, oidc",
    ),
]


@pytest.mark.parametrize(("text", "instance", "line", "column", "detail"), DOC_CASES)
def test_document_rules(text: str, instance: str, line: int, column: int, detail: str) -> None:
    _assert_problem(text, instance, line, column, detail)


# --- everything at once, and the public API ------------------------------------------------

MANY = _tasks(
    """
    - fetch:
        call: http
        with:
          method: get
          endpiont: http://127.0.0.1:1
    - loop:
        for: {in: .items}
        do:
          - use: {set: {x: '${ $item }'}}
        then: fetsh
    - after:
        set: {x: '${ $item }'}
    - both:
        parallel: []
    - pause:
        wait: 5
    """
)


def test_many_problems_at_once_in_document_order() -> None:
    problems = _problems(MANY)
    found = [(p["instance"], p["line"], p["column"]) for p in problems]
    assert found == [
        ("/do/0/fetch/with/endpiont", 7, 9),
        ("/do/1/loop/then", 12, 7),
        ("/do/2/after/set/x", 14, 13),
        ("/do/3/both", 15, 5),
        ("/do/4/pause/wait", 18, 7),
    ]
    assert "did you mean 'endpoint'?" in problems[0]["detail"]
    assert "did you mean 'fetch'?" in problems[1]["detail"]
    assert "use `fork: {branches: [...]}`" in problems[3]["detail"]
    with pytest.raises(DSLValidationError) as info:
        validate_document(load_source(MANY))
    assert len(info.value.problems) == 5
    assert str(info.value).startswith(
        "document: line 7, column 9, at /do/0/fetch/with/endpiont: unknown property"
    )
    assert str(info.value).endswith("(and 4 more problems; see .problems)")
    assert info.value.report().count("\n") == 4


def test_dict_documents_are_checked_without_positions() -> None:
    data = load_source(MANY).data
    problems = check_document(load_source(data))
    assert len(problems) == 5
    assert all("line" not in p for p in problems)


def test_iter_tasks_walks_every_depth() -> None:
    data = load_source(_tasks(VALID["try"], top=USE)).data
    pointers = [pointer for pointer, _, _ in iter_tasks(data["do"])]
    assert pointers == [
        "/do/0/guarded",
        "/do/0/guarded/try/0/call",
        "/do/0/guarded/catch/do/0/recover",
        "/do/1/named",
        "/do/1/named/try/0/x",
        "/do/2/catchAll",
        "/do/2/catchAll/try/0/y",
    ]


@pytest.mark.parametrize(
    ("body", "instance"),
    [
        (
            "call: asyncapi\n      with: {document: {endpoint: http://127.0.0.1:1/a.json}, operation: x}",
            "/do/0/t/call",
        ),
        ("run:\n        container: {image: alpine:3, command: ls}", "/do/0/t/run/container"),
    ],
)
def test_unsupported_tasks_are_refused_before_anything_runs(body: str, instance: str) -> None:
    text = (
        "document: {dsl: '1.0.0', namespace: t, name: t, version: '1.0.0'}\ndo:\n  - t:\n      " + body + "\n"
    )
    problems = check_document(load_source(text))
    assert [(p["instance"], p["title"]) for p in problems] == [(instance, "Not supported")]
    assert "not supported by stigmer_nb" in problems[0]["detail"]


def test_extensions_are_refused_rather_than_ignored() -> None:
    text = """
document: {dsl: '1.0.0', namespace: t, name: t, version: '1.0.0'}
use:
  extensions:
    - logging: {extend: call, before: [{log: {set: {logged: true}}}]}
do:
  - t: {set: {a: 1}}
"""
    problems = check_document(load_source(text))
    assert [(p["instance"], p["title"]) for p in problems] == [("/use/extensions", "Not supported")]


@pytest.mark.parametrize(
    "body",
    [
        "call: grpc\n      with: {proto: {endpoint: file:///p.proto}, service: {name: a.B, host: h, port: 1},"
        " method: M}",
        "call: grpc\n      with: {proto: {endpoint: p.proto}, service: {name: a.B, host: h, port: '${ .port }'},"
        " method: M}",
        "call: a2a\n      with: {method: message/send, server: http://127.0.0.1:1/agent}",
        "call: a2a\n      with: {method: message/send, agentCard: {endpoint: http://127.0.0.1:1/card.json}}",
        "call: mcp\n      with: {method: tools/call, transport: {stdio: {command: x}}}",
        "call: mcp\n      with: {method: tools/list, transport: {http: {endpoint: http://127.0.0.1:1/mcp}}}",
    ],
)
def test_grpc_mcp_and_a2a_calls_validate(body: str) -> None:
    text = (
        "document: {dsl: '1.0.0', namespace: t, name: t, version: '1.0.0'}\ndo:\n  - t:\n      " + body + "\n"
    )
    assert check_document(load_source(text)) == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("call: mcp\n      with: {method: tools/list}", "needs `transport`"),
        (
            "call: mcp\n      with: {method: x, transport: {stdio: {command: x}, http: {endpoint: y}}}",
            "exactly one",
        ),
        ("call: a2a\n      with: {method: message/send}", "needs `agentCard`"),
        ("call: a2a\n      with: {server: http://x}", "needs `method`"),
        (
            "call: grpc\n      with: {service: {name: a.B, port: many}, method: M}",
            "service.port must be a number",
        ),
    ],
)
def test_bad_grpc_mcp_and_a2a_calls_are_refused(body: str, fragment: str) -> None:
    text = (
        "document: {dsl: '1.0.0', namespace: t, name: t, version: '1.0.0'}\ndo:\n  - t:\n      " + body + "\n"
    )
    problems = check_document(load_source(text))
    assert any(fragment in p["detail"] for p in problems), problems
