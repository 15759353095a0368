#!/usr/bin/python3
"""The command line around the daemon: `triglav completions bash|zsh|fish` produce
scripts the shells accept, and the bash one completes subcommands, nested subcommands
and options; `--help` lists every subcommand; `--version`, `-V` and `triglav version`
print the same line; `triglav server --generate-key --print-key --key FILE` saves a key,
prints its AuthKey and exits without serving, `--print-key --key FILE` prints the same
again, and --print-key is refused with --daemon. (Without --key, --print-key serves the
one-off key like --generate-key alone: test_listen.)

usage: test_cli.py /path/to/triglav; exit 0/1/77
"""
import os
import shutil
import subprocess
import sys
import tempfile

SUBCOMMANDS = ["version", "keygen", "config", "server", "tun", "status", "diagnose", "completions", "uplink"]


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, **kw)


def complete(script, words):
    """What the bash completion offers for COMP_WORDS=words (the last one is completed)."""
    prog = (f"source {script}\nCOMP_WORDS=({' '.join(repr(w) for w in words)})\n"
            f"COMP_CWORD={len(words) - 1}\n_triglav\necho \"${{COMPREPLY[@]}}\"\n")
    r = run(["bash", "-c", prog])
    return r.stdout.split()


def main():
    binary = os.path.abspath(sys.argv[1])
    failures, checks = [], []

    def check(ok, msg):
        if not ok:
            failures.append(msg)
        return ok

    h = run([binary, "--help"])
    check(h.returncode == 0 and all(s in h.stdout for s in SUBCOMMANDS), f"--help lacks subcommands:\n{h.stdout}")
    versions = [run([binary, *argv]) for argv in (["--version"], ["-V"], ["version"])]
    check(all(v.returncode == 0 and v.stdout.startswith("triglav ") and v.stdout == versions[0].stdout
              for v in versions), "--version, -V and version differ or fail:\n"
          + "\n".join(f"{v.returncode} {v.stdout!r} {v.stderr!r}" for v in versions))
    checks.append(f"--version, -V and `triglav version` print {versions[0].stdout.strip()!r}")

    with tempfile.TemporaryDirectory() as d:
        key = os.path.join(d, "server.key")
        made = run([binary, "server", "--generate-key", "--print-key", "--key", key, "--address", "192.0.2.7:7443"])
        lines = made.stdout.split()
        check(made.returncode == 0 and len(lines) == 1 and lines[0].startswith("tg1_") and os.path.exists(key),
              f"server --generate-key --print-key --key: {made.returncode} {made.stdout!r} {made.stderr!r}")
        again = run([binary, "server", "--print-key", "--key", key])
        check(again.returncode == 0 and again.stdout == made.stdout,
              f"server --print-key --key (saved): {again.returncode} {again.stdout!r} vs {made.stdout!r} {again.stderr!r}")
        bg = run([binary, "server", "--print-key", "--key", key, "--daemon"])
        check(bg.returncode == 1 and bg.stderr.startswith("triglav: error: --print-key") and bg.stdout == "",
              f"--print-key --daemon: {bg.returncode} {bg.stdout!r} {bg.stderr!r}")
        missing = run([binary, "server", "--print-key", "--key", os.path.join(d, "none.key")])
        check(missing.returncode == 1 and missing.stderr.startswith("triglav: error:") and missing.stdout == "",
              f"--print-key --key (no such file): {missing.returncode} {missing.stdout!r} {missing.stderr!r}")
        checks.append("server --generate-key --print-key --key prints one AuthKey and exits (read back by "
                      "--print-key --key); refused with --daemon, and for a key file that does not exist")

    with tempfile.TemporaryDirectory() as d:
        scripts = {}
        for shell in ("bash", "zsh", "fish"):
            r = run([binary, "completions", shell])
            check(r.returncode == 0 and "server" in r.stdout and "listen" in r.stdout, f"completions {shell}: {r.stderr}")
            scripts[shell] = os.path.join(d, f"triglav.{shell}")
            with open(scripts[shell], "w") as f:
                f.write(r.stdout)
        r = run([binary, "completions", "tcsh"])
        check(r.returncode != 0 and "tcsh" in r.stderr, "completions tcsh should be refused")
        check(run(["bash", "-n", scripts["bash"]]).returncode == 0, "the bash script does not parse")
        for shell in ("zsh", "fish"):
            if shutil.which(shell):
                check(run([shell, "-n", scripts[shell]]).returncode == 0, f"the {shell} script does not parse")
            else:
                checks.append(f"({shell} not installed: its script checked for content only)")
        got = complete(scripts["bash"], ["triglav", "se"])
        check(got == ["server"], f"'triglav se<TAB>' offered {got}")
        got = complete(scripts["bash"], ["triglav", "server", "--lis"])
        check(got == ["--listen"], f"'triglav server --lis<TAB>' offered {got}")
        got = complete(scripts["bash"], ["triglav", "uplink", "s"])
        check(got == ["show"], f"'triglav uplink s<TAB>' offered {got}")
        got = complete(scripts["bash"], ["triglav", "tun", "--full-tunnel", "--exc"])
        check(got == ["--exclude"], f"'triglav tun --full-tunnel --exc<TAB>' offered {got}")
        checks.append("bash completes 'se' -> server, 'server --lis' -> --listen, 'uplink s' -> show, "
                      "'tun ... --exc' -> --exclude; the scripts parse")
    for c in checks:
        print(f"  ok  {c}")
    if failures:
        print("FAIL: cli:\n" + "\n".join(failures))
        return 1
    print("PASS: cli")
    return 0


if __name__ == "__main__":
    sys.exit(main())
