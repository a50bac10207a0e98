#!/usr/bin/env python3
"""Copies an example's cachegate.toml with its listeners and its upstream moved to given ports.

    rewrite_config.py SOURCE TARGET PROXY_PORT BACKEND_PORT ADMIN_PORT

Rewrites `[server] listen`, `[upstream] url` and, when the config has an `[admin]` section, the
admin listener (set even where the section relies on the default address); every other line is
copied as shipped. Prints the name of the environment variable the admin token is read from
(`token_env`, or the default one) when the config has an `[admin]` section with no
`token_file`, and nothing otherwise. Standard library only.
"""

import re
import sys

HEADER = re.compile(r"\s*\[+\s*([A-Za-z0-9_.\"-]+)\s*\]+")


def main():
    source, target, proxy_port, backend_port, admin_port = sys.argv[1:]
    section, out, seen = None, [], set()
    token_env, token_file = "CACHEGATE_ADMIN_TOKEN", False
    for line in open(source):
        header = HEADER.match(line)
        if header:
            section = header.group(1)
            out.append(line)
            if section == "admin":
                out.append('listen = "127.0.0.1:%s"\n' % admin_port)
                seen.add("admin")
            continue
        if section == "server" and re.match(r"\s*listen\s*=", line):
            line = 'listen = "127.0.0.1:%s"\n' % proxy_port
            seen.add("listen")
        elif section == "upstream" and re.match(r"\s*url\s*=", line):
            line = 'url = "http://127.0.0.1:%s"\n' % backend_port
            seen.add("url")
        elif section == "admin" and re.match(r"\s*listen\s*=", line):
            continue
        elif section == "admin":
            found = re.match(r'\s*token_env\s*=\s*"([^"]+)"', line)
            if found:
                token_env = found.group(1)
            token_file = token_file or bool(re.match(r"\s*token_file\s*=", line))
        out.append(line)
    if not {"listen", "url"} <= seen:
        sys.exit("%s: [server] listen and [upstream] url must be set" % source)
    with open(target, "w") as f:
        f.write("".join(out))
    if "admin" in seen and not token_file:
        print(token_env)


if __name__ == "__main__":
    main()
