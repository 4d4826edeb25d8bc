# bash completion for volt-inspect.
#
# The candidates come from volt-inspect itself (`volt-inspect __complete
# WORD...`, from its own table of verbs and options), so this file never
# needs to change when an option is added; commands and message types are
# asked of the running broker (--socket, else the default socket).

_volt_inspect() {
    local cur words cword out
    if declare -F _get_comp_words_by_ref >/dev/null 2>&1; then
        _get_comp_words_by_ref -n =: cur words cword
    else
        cur=${COMP_WORDS[COMP_CWORD]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi
    out=$("${words[0]}" __complete "${words[@]:1:cword}" 2>/dev/null) || return 0
    if [[ $out == ":file" ]]; then
        local IFS=$'\n'
        if [[ $cur == @* ]]; then
            COMPREPLY=($(compgen -f -P @ -- "${cur#@}"))
        else
            COMPREPLY=($(compgen -f -- "$cur"))
        fi
        compopt -o filenames 2>/dev/null
        return 0
    fi
    local IFS=$'\n'
    COMPREPLY=($out)
    # A --match term or an @FILE may go on: no space after KEY= and the like.
    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]]; then
        compopt -o nospace 2>/dev/null
    fi
    return 0
}
complete -F _volt_inspect volt-inspect
