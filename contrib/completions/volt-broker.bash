# bash completion for volt-broker.
#
# The options are read from `volt-broker --help` at completion time (the
# help is generated from the broker's settings table), so this file never
# lists them: one source of truth. An option's argument is completed by the
# word its help line gives it: FILE and TEXT as paths, BOOL as true/false,
# and a list spelled out in the description ("error, warn, info or debug")
# as those words.

_volt_broker() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    local prev=${COMP_WORDS[COMP_CWORD-1]}
    local help line opt arg desc
    help=$("${COMP_WORDS[0]}" --help 2>/dev/null) || return 0
    local -a opts=()
    local want_arg="" want_desc=""
    local re='^ +(-[a-zA-Z], )?(--[a-z][a-z0-9-]*)( ([^ ]+))? +(.*)$'
    while IFS= read -r line; do
        [[ $line =~ $re ]] || continue
        opt=${BASH_REMATCH[2]}
        arg=${BASH_REMATCH[4]}
        desc=${BASH_REMATCH[5]}
        opts+=("$opt")
        if [[ $opt == "$prev" || ( -n ${BASH_REMATCH[1]} && ${BASH_REMATCH[1]%, } == "$prev" ) ]]; then
            want_arg=${arg:-none}
            want_desc=$desc
        fi
    done <<<"$help"
    if [[ -n $want_arg && $want_arg != none ]]; then
        local IFS=$'\n'
        case $want_arg in
        FILE|TEXT)
            COMPREPLY=($(compgen -f -- "$cur"))
            compopt -o filenames 2>/dev/null
            ;;
        BOOL)
            COMPREPLY=($(compgen -W $'true\nfalse' -- "$cur"))
            ;;
        *)
            # "error, warn, info or debug" -> those words
            if [[ $want_desc =~ ^([a-z]+, )+[a-z]+\ or\ [a-z]+$ ]]; then
                local words=${want_desc//, /$'\n'}
                words=${words// or /$'\n'}
                COMPREPLY=($(compgen -W "$words" -- "$cur"))
            fi
            ;;
        esac
        return 0
    fi
    local IFS=$'\n'
    COMPREPLY=($(compgen -W "${opts[*]}" -- "$cur"))
    return 0
}
complete -F _volt_broker volt-broker
