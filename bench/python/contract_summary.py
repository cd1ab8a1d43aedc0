"""Reads a schemathesis run's summary (its text output) and prints the
figures of `bench/run contract` as one JSON object: test cases, failures
in all and by check, errors, and the seconds the run took."""

import json
import re
import sys

text = open(sys.argv[1], encoding="utf-8").read()
summary = text[text.rfind("SUMMARY"):]
failures = {
    code: int(count)
    for code, count in re.findall(r"(ST\d+) [^:\n]+: (\d+)", summary.split("Errors:")[0])
}
errors = sum(int(n) for n in re.findall(r"\n\s+\S+ [^:\n]+: (\d+)", summary.split("Errors:")[1].split("Warnings:")[0])) if "Errors:" in summary else 0
cases = re.search(r"(\d+) generated", summary)
operations = re.search(r"Tested: (\d+)", summary)
print(json.dumps({
    "benchmark": "contract",
    "operations_tested": int(operations.group(1)) if operations else 0,
    "test_cases": int(cases.group(1)) if cases else 0,
    "failures": sum(failures.values()),
    "failures_by_check": failures,
    "errors": errors,
    "seconds": int(sys.argv[2]),
}))
