#!/usr/bin/env bash
# Refresh the vendored GraphiQL assets from the npm registry (pinned versions below).
# GraphiQL is served from the server itself so that it works on networks with no way out;
# nothing here runs at install or run time. Needs npm; run from anywhere, then commit.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent react@18.2.0 react-dom@18.2.0 graphiql@3.8.3 @graphiql/plugin-explorer@1.0.2 >/dev/null
for f in *.tgz; do mkdir -p "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done
v="$here/vendor"
cp react-18.2.0/package/umd/react.production.min.js "$v/"
cp react-dom-18.2.0/package/umd/react-dom.production.min.js "$v/"
cp graphiql-3.8.3/package/graphiql.min.js graphiql-3.8.3/package/graphiql.min.css "$v/"
cp graphiql-plugin-explorer-1.0.2/package/dist/index.umd.js "$v/plugin-explorer.umd.js"
cp graphiql-plugin-explorer-1.0.2/package/dist/style.css "$v/plugin-explorer.css"
cp react-18.2.0/package/LICENSE "$v/LICENSE.react"
cp react-dom-18.2.0/package/LICENSE "$v/LICENSE.react-dom"
cp graphiql-3.8.3/package/LICENSE "$v/LICENSE.graphiql"
# Source maps are not shipped; their comments would only make browsers ask for them.
sed -i 's|^//# sourceMappingURL=.*$||; s|/\*# sourceMappingURL=[^*]*\*/||' \
    "$v/graphiql.min.js" "$v/graphiql.min.css"
echo "refreshed $v"
