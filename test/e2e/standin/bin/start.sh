#!/bin/sh
# GlitchTip's start.sh picks the role from SERVER_ROLE (web when unset)
role=${SERVER_ROLE:-web}
. /code/bin/standin.sh
