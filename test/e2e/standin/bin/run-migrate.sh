#!/bin/sh
role=migrate
. /code/bin/standin.sh
