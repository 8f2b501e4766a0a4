#!/bin/sh
role=beat
. /code/bin/standin.sh
