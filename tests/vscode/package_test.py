#!/usr/bin/env python3
"""Builds the extension's .vsix (`npm run package`: esbuild --production, then @vscode/vsce, which
must not ask anything and needs no network) and checks what it holds.

usage: package_test.py EXTENSION_DIR OUT_DIR    (the .vsix is copied to OUT_DIR/augury.vsix)
"""
import json
import os
import shutil
import subprocess
import sys
import zipfile


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    ext, out_dir = sys.argv[1], sys.argv[2]
    vsix = os.path.join(ext, "out", "augury.vsix")
    if os.path.exists(vsix):
        os.remove(vsix)
    # stdin closed: a prompt (LICENSE, repository) would read EOF and fail instead of waiting.
    p = subprocess.run(["npm", "run", "--silent", "package"], cwd=ext, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=240)
    if p.returncode != 0:
        fail(f"npm run package: exit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    if not os.path.exists(vsix):
        fail(f"no {vsix} after npm run package:\n{p.stdout[-2000:]}")
    with open(os.path.join(ext, "package.json")) as f:
        manifest = json.load(f)
    with zipfile.ZipFile(vsix) as z:
        names = set(z.namelist())
        for want in ("extension.vsixmanifest", "extension/package.json", "extension/out/extension.js"):
            if want not in names:
                fail(f"{want} missing from the .vsix ({sorted(names)})")
        stray = [n for n in names if n.startswith("extension/") and
                 n not in ("extension/package.json", "extension/out/extension.js", "extension/readme.md")]
        if stray:
            fail(f"the .vsix holds more than the bundle: {stray[:20]}")
        packed = json.loads(z.read("extension/package.json"))
        if packed["version"] != manifest["version"] or packed["main"] != "./out/extension.js":
            fail(f"packed package.json: version {packed['version']}, main {packed['main']}")
        bundle = z.read("extension/out/extension.js").decode("utf-8")
        # The bundle carries vscode-languageclient and requires only the host's vscode module.
        if "textDocument/inlineCompletion" not in bundle or 'require("vscode")' not in bundle:
            fail("extension.js does not look like the bundled client")
        if "vscode-languageclient/node" in bundle and "require(\"vscode-languageclient" in bundle:
            fail("extension.js requires vscode-languageclient at run time: it is not bundled")
        vsixmanifest = z.read("extension.vsixmanifest").decode("utf-8")
        if f'Version="{manifest["version"]}"' not in vsixmanifest:
            fail("extension.vsixmanifest does not carry the version")
    os.makedirs(out_dir, exist_ok=True)
    dest = os.path.join(out_dir, "augury.vsix")
    shutil.copyfile(vsix, dest)
    print(f"vsix ok: {dest}, {os.path.getsize(dest)} bytes, {len(names)} files")


if __name__ == "__main__":
    main()
