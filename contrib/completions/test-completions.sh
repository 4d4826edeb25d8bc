#!/usr/bin/env bash
# Drives the bash and zsh completion functions as the shells would call
# them (COMP_WORDS/COMP_CWORD; words/CURRENT with compadd and _arguments
# recording what they are given) against the built programs, and checks
# the candidates. Usage: test-completions.sh DIR_OF_VOLT_INSPECT DIR_OF_VOLT_BROKER
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
export PATH="$1:$2:$PATH"
# No broker here: commands and types must simply be left out, quickly.
export VOLT_BROKER_SOCKET=/nonexistent/volt-test.sock
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
touch "$tmp/payload.json" "$tmp/other.txt"
failed=0 passed=0

check() { # name, got, expected
    if [[ $2 == "$3" ]]; then
        passed=$((passed + 1))
    else
        printf 'FAIL %s\n  expected: %s\n  got:      %s\n' "$1" "$3" "$2"
        failed=$((failed + 1))
    fi
}

# ---- bash ----
source "$here/volt-inspect.bash"
source "$here/volt-broker.bash"
b() { # words... -> the candidates, sorted, one line
    COMP_WORDS=("$@")
    COMP_CWORD=$(($# - 1))
    COMPREPLY=()
    if [[ $1 == volt-broker ]]; then _volt_broker; else _volt_inspect; fi
    printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}
check "bash verb" "$(b volt-inspect re)" "request"
check "bash verbs s" "$(b volt-inspect s)" "serve session status subscribe"
check "bash option of a verb" "$(b volt-inspect monitor --ma)" "--match"
check "bash option not of that verb" "$(b volt-inspect request --ma)" ""
check "bash request options" "$(b volt-inspect request x --t)" "--timeout"
check "bash match keys" "$(b volt-inspect monitor --match si)" "side=local side=upstream"
check "bash match second term" "$(b volt-inspect monitor --match op=call,di)" "op=call,dir=in op=call,dir=out"
check "bash help verb" "$(b volt-inspect help mon)" "monitor"
check "bash capture file" "$(b volt-inspect monitor --read "$tmp/pay")" "$tmp/payload.json"
check "bash @file payload" "$(b volt-inspect request cmd "@$tmp/pay")" "@$tmp/payload.json"
check "bash exec program" "$(b volt-inspect serve cmd --exec "$tmp/oth")" "$tmp/other.txt"
check "bash no broker: no commands" "$(b volt-inspect request "")" ""
check "bash broker option" "$(b volt-broker --log-l)" "--log-level"
check "bash broker short option" "$(b volt-broker -c "$tmp/pay")" "$tmp/payload.json"
check "bash broker level" "$(b volt-broker --log-level "")" "debug error info warn"
check "bash broker bool" "$(b volt-broker --insecure "")" "false true"
check "bash broker file" "$(b volt-broker --config "$tmp/oth")" "$tmp/other.txt"
# Every option of the help is offered: the same count as --help has lines.
want=$(volt-broker --help | grep -cE '^ +(-[a-zA-Z], )?--[a-z]')
check "bash broker every option" "$(b volt-broker --  | wc -w)" "$want"

# ---- zsh ----
if ! command -v zsh >/dev/null; then
    echo "FAIL zsh is not installed (contrib/ci/setup.sh installs it)"
    exit 1
fi
zraw() { # words... (the last is being completed) -> what compadd/_files/_arguments got
    zsh -f -c '
        compadd() { while [[ $1 == -* && $1 != -- ]]; do shift; done; [[ $1 == -- ]] && shift; print -r -l -- "$@"; }
        _files() { print -r -- ":files $PREFIX"; }
        compset() { [[ $2 == "@" && $PREFIX == @* ]] && PREFIX=${PREFIX#@}; return 0; }
        _arguments() { shift; print -r -l -- "$@"; }
        source "$1/_volt-inspect"; source "$1/_volt-broker"
        shift
        words=("$@"); CURRENT=$#; PREFIX=${words[CURRENT]}
        if [[ $words[1] == volt-broker ]]; then _volt_broker; else _volt_inspect; fi
    ' zsh "$here" "$@" 2>&1
}
z() { zraw "$@" | sort | tr '\n' ' ' | sed 's/ $//'; }
check "zsh verb" "$(z volt-inspect han)" "handlers"
check "zsh option" "$(z volt-inspect proxy --li)" "--listen"
check "zsh match key" "$(z volt-inspect proxy --match ki)" "kind=close kind=error kind=frame kind=open"
check "zsh file" "$(z volt-inspect monitor --write "$tmp/x")" ":files $tmp/x"
check "zsh @file" "$(z volt-inspect emit t "@$tmp/p")" ":files $tmp/p"
check "zsh broker level" "$(zraw volt-broker --log-level "" | grep -c '^--log-level\[error, warn, info or debug\]:LEVEL:(error warn info debug)$')" "1"
check "zsh broker file" "$(zraw volt-broker -c "" | grep -c '^--config\[')" "1"
check "zsh broker flag" "$(zraw volt-broker "" | grep -c '^--check-config\[')" "1"

echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
