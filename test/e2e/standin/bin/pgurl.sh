# Sourced by standin.sh and probe-db.sh: DATABASE_URL's parts as libpq's environment, so that no password is
# ever in a process's argv (the test fails on any secret in any argv; GlitchTip never puts one there either).
# urldecode: stdin with %XX decoded, as GlitchTip (django-environ) decodes DATABASE_URL's user and password
# (mawk's %c writes the byte itself, so a UTF-8 password decodes byte for byte)
urldecode() {
  awk 'BEGIN { hex = "0123456789ABCDEF" } {
    out = ""; s = $0
    while (match(s, /%[0-9A-Fa-f][0-9A-Fa-f]/)) {
      out = out substr(s, 1, RSTART - 1) sprintf("%c", (index(hex, toupper(substr(s, RSTART + 1, 1))) - 1) * 16 + index(hex, toupper(substr(s, RSTART + 2, 1))) - 1)
      s = substr(s, RSTART + 3)
    }
    printf "%s", out s
  }'
}
# pg_env URL: sets PGHOST, PGPORT, PGUSER, PGDATABASE and PGPASSWORD (not exported: pass them to psql's
# environment explicitly) from a postgres://user:password@host:port/db URL
pg_env() {
  _rest=${1#*://}
  _userinfo=${_rest%%@*} _hostpart=${_rest#*@}
  PGUSER=$(printf '%s' "${_userinfo%%:*}" | urldecode) PGPASSWORD=$(printf '%s' "${_userinfo#*:}" | urldecode)
  _hostport=${_hostpart%%/*} PGDATABASE=$(printf '%s' "${_hostpart#*/}" | urldecode)
  PGHOST=${_hostport%%:*} PGPORT=${_hostport##*:}
}
