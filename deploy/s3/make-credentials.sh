#!/bin/sh
# make-credentials.sh: the S3 credentials of the compose stack, made once in
# the s3-credentials volume (mounted at $DIR) and kept afterwards:
#   $DIR/s3.json      the SeaweedFS identity (weed server -s3.config)
#   $DIR/credentials  the same key in the AWS shared credentials format, read by
#                     sanwatch through AWS_SHARED_CREDENTIALS_FILE
# The secret is never in argv, the environment or the compose file. To use
# keys of your own, write both files into the volume before the first `up`.
set -eu
DIR=${DIR:-/credentials}
umask 022
if [ -s "$DIR/s3.json" ] && [ -s "$DIR/credentials" ]; then
	echo "s3 credentials in $DIR exist, kept"
	exit 0
fi
rand() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
key="sanwatch-$(rand 6)"
secret=$(rand 24)
tmp=$(mktemp -d "$DIR/.new.XXXXXX")
cat >"$tmp/s3.json" <<JSON
{"identities": [{"name": "sanwatch",
  "credentials": [{"accessKey": "$key", "secretKey": "$secret"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
JSON
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$key" "$secret" >"$tmp/credentials"
# Readable by the SeaweedFS and sanwatch users of their images; the volume is
# mounted only where the key is needed.
chmod 0644 "$tmp/s3.json" "$tmp/credentials"
mv "$tmp/s3.json" "$tmp/credentials" "$DIR/"
rmdir "$tmp"
echo "s3 credentials written to $DIR (access key $key)"
