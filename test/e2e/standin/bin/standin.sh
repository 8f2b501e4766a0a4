# Sourced by the role scripts (which set $role): behaves like a GlitchTip process as far as the e2e test can tell.
# It logs how it was started, makes the first database connection with DATABASE_URL (web only, as GlitchTip
# would, retrying while postgres starts), then stays up until SIGTERM. Its environment — what the test
# checks byte for byte — is in /proc/1/environ, as the wrapper's `exec` made this shell PID 1.
echo "standin role=$role pid=$$ uid=$(id -u) gid=$(id -g) groups=$(id -G)"
if [ "$role" = web ]; then
  i=0
  until out=$(psql "$DATABASE_URL" -w -tA -c "select current_user || ' ' || current_database()" 2>&1); do
    i=$((i + 1))
    if [ $i -ge 120 ]; then break; fi
    sleep 0.5
  done
  echo "standin db: $out"
fi
trap 'echo "standin role=$role stopping"; exit 0' TERM INT
while :; do
  sleep 3600 &
  wait $!
done
