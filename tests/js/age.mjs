// The npm age-encryption package (typage), as an independent age implementation for the tests:
//   node tests/js/age.mjs keygen                -> "IDENTITY RECIPIENT" (a hybrid post-quantum pair)
//   node tests/js/age.mjs encrypt RECIPIENT...  -> stdin encrypted to the recipients, on stdout
//   node tests/js/age.mjs decrypt IDENTITY_FILE -> stdin decrypted with the file's identities
import { readFileSync } from "node:fs";
import { Decrypter, Encrypter, generateHybridIdentity, identityToRecipient } from "age-encryption";

const [mode, ...args] = process.argv.slice(2);
const input = () => new Uint8Array(readFileSync(0));

if (mode === "keygen") {
  const identity = await generateHybridIdentity();
  process.stdout.write(`${identity} ${await identityToRecipient(identity)}\n`);
} else if (mode === "encrypt") {
  const e = new Encrypter();
  for (const r of args) e.addRecipient(r);
  process.stdout.write(await e.encrypt(input()));
} else if (mode === "decrypt") {
  const d = new Decrypter();
  for (const line of readFileSync(args[0], "utf8").split("\n")) {
    if (line.trim() && !line.startsWith("#")) d.addIdentity(line.trim());
  }
  process.stdout.write(await d.decrypt(input()));
} else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
