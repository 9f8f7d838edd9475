// Prints a state machine definition with its SAM DefinitionSubstitutions (`${Name}`) replaced
// by values shaped like the ones the stack passes, so that asl-validator checks the Resource
// ARNs the deployed state machine will have (it accepts a bare `${...}` Resource unchecked).
//
//   node tests/tools/asl-substitute.mjs statemachines/deploy-site.asl.json > substituted.json
import { readFileSync } from "node:fs";

const ACCOUNT = "123456789012";
const REGION = "us-east-1";

const kebab = (name) => name.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase();

// Placeholder values by the substitution's name suffix, as infra/template.yaml names them.
const KINDS = [
  ["FunctionArn", (stem) => `arn:aws:lambda:${REGION}:${ACCOUNT}:function:slipway-${kebab(stem)}`],
  ["StateMachineArn", (stem) => `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:slipway-${kebab(stem)}`],
  ["TableArn", (stem) => `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/slipway-${kebab(stem)}`],
  ["BucketName", (stem) => `slipway-${kebab(stem)}-${ACCOUNT}`],
  ["Name", (stem) => `slipway-${kebab(stem)}`],
];

function placeholder(name) {
  for (const [suffix, make] of KINDS) {
    if (name.endsWith(suffix) && name.length > suffix.length) {
      return make(name.slice(0, -suffix.length));
    }
  }
  return null;
}

const [file] = process.argv.slice(2);
if (!file) {
  console.error("usage: node asl-substitute.mjs DEFINITION.asl.json");
  process.exit(2);
}
const text = readFileSync(file, "utf8");
const unknown = new Set();
const substituted = text.replace(/\$\{([A-Za-z0-9_]+)\}/g, (whole, name) => {
  const value = placeholder(name);
  if (value === null) unknown.add(name);
  return value ?? whole;
});
if (unknown.size > 0) {
  console.error(
    `${file}: no placeholder for ${[...unknown].map((n) => "${" + n + "}").join(", ")}; ` +
      `name it with one of the suffixes ${KINDS.map(([s]) => s).join(", ")} ` +
      "or add its kind to tests/tools/asl-substitute.mjs",
  );
  process.exit(1);
}
// Parse to fail here, naming the file, if a substitution broke the JSON.
process.stdout.write(JSON.stringify(JSON.parse(substituted), null, 2) + "\n");
