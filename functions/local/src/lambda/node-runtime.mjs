// slipway's Node.js runtime for `slipway dev`: the Lambda Runtime API loop that AWS's
// Node runtime runs, with its handler rules (`file.export`, split at the first dot; .mjs,
// .cjs or .js; async handlers or callbacks) and its init error names
// (Runtime.ImportModuleError, Runtime.UserCodeSyntaxError, Runtime.HandlerNotFound).
// Usage: node node-runtime.mjs HANDLER, with AWS_LAMBDA_RUNTIME_API set.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const api = `http://${process.env.AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime`;
const handlerName = process.argv[2] ?? process.env._HANDLER ?? "index.handler";
const root = process.env.LAMBDA_TASK_ROOT ?? process.cwd();

class InitError extends Error {
  constructor(type, message) {
    super(message);
    this.name = type;
  }
}

function errorDocument(error) {
  const err = error instanceof Error ? error : new Error(String(error));
  return {
    errorType: err.name || "Error",
    errorMessage: err.message,
    trace: String(err.stack || "").split("\n"),
  };
}

async function post(url, body, errorType) {
  const headers = { "content-type": "application/json" };
  if (errorType) headers["lambda-runtime-function-error-type"] = errorType;
  await fetch(url, { method: "POST", headers, body: JSON.stringify(body ?? null) });
}

async function loadHandler() {
  const dot = handlerName.indexOf(".");
  if (dot < 1) {
    throw new InitError("Runtime.MalformedHandlerName", `Bad handler ${handlerName}`);
  }
  const file = handlerName.slice(0, dot);
  const exportPath = handlerName.slice(dot + 1).split(".");
  const base = path.resolve(root, file);
  const found = [".mjs", ".cjs", ".js"].map((ext) => base + ext).find((f) => fs.existsSync(f));
  if (!found) {
    throw new InitError(
      "Runtime.ImportModuleError",
      `Error: Cannot find module '${file}'\nRequire stack:\n- ${root}`,
    );
  }
  let module;
  try {
    module = await import(pathToFileURL(found).href);
  } catch (err) {
    if (err instanceof SyntaxError) {
      throw new InitError("Runtime.UserCodeSyntaxError", `${err.name}: ${err.message}`);
    }
    throw err;
  }
  const pick = (from) => exportPath.reduce((value, key) => value?.[key], from);
  const handler = pick(module) ?? pick(module.default);
  if (typeof handler !== "function") {
    throw new InitError("Runtime.HandlerNotFound", `${handlerName} is undefined or not exported`);
  }
  return handler;
}

function invoke(handler, event, context) {
  if (handler.length >= 3) {
    return new Promise((resolve, reject) => {
      const result = handler(event, context, (err, value) => (err ? reject(err) : resolve(value)));
      if (result && typeof result.then === "function") result.then(resolve, reject);
    });
  }
  return Promise.resolve().then(() => handler(event, context));
}

let handler;
try {
  handler = await loadHandler();
} catch (err) {
  const doc = errorDocument(err);
  console.error(`${doc.errorType}: ${doc.errorMessage}`);
  await post(`${api}/init/error`, doc, doc.errorType);
  process.exit(129);
}

for (;;) {
  const next = await fetch(`${api}/invocation/next`);
  const requestId = next.headers.get("lambda-runtime-aws-request-id");
  const deadline = Number(next.headers.get("lambda-runtime-deadline-ms"));
  const traceId = next.headers.get("lambda-runtime-trace-id");
  if (traceId) process.env._X_AMZN_TRACE_ID = traceId;
  else delete process.env._X_AMZN_TRACE_ID;
  const text = await next.text();
  const context = {
    awsRequestId: requestId,
    invokedFunctionArn: next.headers.get("lambda-runtime-invoked-function-arn"),
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
  try {
    const event = text.length ? JSON.parse(text) : null;
    const result = await invoke(handler, event, context);
    await post(`${api}/invocation/${requestId}/response`, result === undefined ? null : result);
  } catch (err) {
    const doc = errorDocument(err);
    console.error(`${requestId}\tERROR\t${doc.errorType}: ${doc.errorMessage}`);
    await post(`${api}/invocation/${requestId}/error`, doc, doc.errorType);
  }
}
