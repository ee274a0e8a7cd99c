"""Seconds to parse one camt.053 file of N statements (one custody account each, three entries each).

Usage: python bench/camt053_parse.py [STATEMENTS]   (default 1000; prints one JSON line last)

A province's day is one statement per custody account: 10,000 statements must parse in seconds.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from escrow.bank.formats import parse_statements

DAY = date(2026, 11, 26)
ENTRY = (
    '<Ntry><Amt Ccy="CNY">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>'
    "<BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt><AcctSvcrRef>B{n}</AcctSvcrRef>"
    "<NtryDtls><TxDtls><Refs><EndToEndId>C-{n}</EndToEndId></Refs><RltdPties><Dbtr><Nm>王芳</Nm></Dbtr>"
    "</RltdPties><RmtInf><Ustrd>学费</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"
)


def balance(code: str, amount: str) -> str:
    return (
        f'<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">{amount}</Amt>'
        f"<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{DAY}</Dt></Dt></Bal>"
    )


def camt_file(statements: int) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">'
        "<BkToCstmrStmt><GrpHdr><MsgId>BENCH</MsgId><CreDtTm>2026-11-27T02:00:00+08:00</CreDtTm></GrpHdr>"
    ]
    for s in range(statements):
        entries = "".join(ENTRY.format(amount="100.00", day=DAY, n=f"{s}-{e}") for e in range(3))
        parts.append(
            f"<Stmt><Id>S{s}</Id><Acct><Id><Othr><Id>6222{s:012d}</Id></Othr></Id><Ccy>CNY</Ccy></Acct>"
            f"{balance('OPBD', '1000.00')}{balance('CLBD', '1300.00')}{entries}</Stmt>"
        )
    parts.append("</BkToCstmrStmt></Document>")
    return "".join(parts).encode()


def main() -> None:
    statements = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    data = camt_file(statements)
    started = time.perf_counter()
    parsed = parse_statements(data, "camt053")
    seconds = time.perf_counter() - started
    assert len(parsed) == statements and all(len(s.lines) == 3 for s in parsed)
    print(
        json.dumps(
            {
                "bench": "camt053_parse",
                "statements": statements,
                "megabytes": round(len(data) / 2**20, 2),
                "seconds": round(seconds, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
