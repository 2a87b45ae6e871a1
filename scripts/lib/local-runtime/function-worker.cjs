// One Lambda "container" for the local runtime (function-host.ts forks it with the Node 22 binary): loads the
// handler named by LOCAL_LAMBDA_HANDLER (`<module path>.<export>`) from the task root (its cwd, the unpacked
// deployment archive) and runs one invocation at a time, as the parent asks over IPC. Plain CommonJS without
// dependencies: it runs on whichever Node the host names, outside the TypeScript toolchain.
'use strict';

const { join } = require('node:path');
const { pathToFileURL } = require('node:url');
const { existsSync } = require('node:fs');
const { setImmediate } = require('node:timers');

const handlerSpec = process.env.LOCAL_LAMBDA_HANDLER || 'index.handler';
delete process.env.LOCAL_LAMBDA_HANDLER;
// The IPC channel is open by now: the handler sees only the function's environment.
delete process.env.NODE_CHANNEL_FD;
delete process.env.NODE_CHANNEL_SERIALIZATION_MODE;
const taskRoot = process.cwd();

/** The error as Lambda reports it: type and message (and stack, for the log only). */
function describe(error) {
  if (error instanceof Error) {
    return {
      errorType: error.name || 'Error',
      errorMessage: error.message,
      trace: String(error.stack || '').split('\n'),
    };
  }
  return {
    errorType: 'Error',
    errorMessage: typeof error === 'string' ? error : (JSON.stringify(error) ?? String(error)),
    trace: [],
  };
}

async function loadHandler() {
  const dot = handlerSpec.lastIndexOf('.');
  if (dot <= 0)
    throw Object.assign(new Error(`Bad handler ${handlerSpec}: expected <module>.<export>`), {
      name: 'Runtime.MalformedHandlerName',
    });
  const modulePath = handlerSpec.slice(0, dot);
  const exportName = handlerSpec.slice(dot + 1);
  const base = join(taskRoot, modulePath);
  const file = ['.js', '.mjs', '.cjs'].map((ext) => base + ext).find((candidate) => existsSync(candidate));
  if (!file)
    throw Object.assign(new Error(`Cannot find module '${modulePath}'`), {
      name: 'Runtime.ImportModuleError',
    });
  let mod;
  try {
    mod = file.endsWith('.mjs') ? await import(pathToFileURL(file).href) : require(file);
  } catch (error) {
    if (error && error.code === 'ERR_REQUIRE_ESM') mod = await import(pathToFileURL(file).href);
    else throw error;
  }
  const handler = mod[exportName] ?? (mod.default && mod.default[exportName]);
  if (typeof handler !== 'function')
    throw Object.assign(new Error(`${modulePath}.${exportName} is undefined or not exported`), {
      name: 'Runtime.HandlerNotFound',
    });
  return handler;
}

const loading = loadHandler();
let current;

function reply(message) {
  if (process.connected) process.send(message);
}

/** Lambda's context object for one invocation. */
function contextOf(request, finish) {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: request.context.functionName,
    functionVersion: request.context.functionVersion,
    invokedFunctionArn: request.context.invokedFunctionArn,
    memoryLimitInMB: request.context.memoryLimitInMB,
    awsRequestId: request.context.awsRequestId,
    logGroupName: request.context.logGroupName,
    logStreamName: request.context.logStreamName,
    getRemainingTimeInMillis: () => Math.max(0, request.context.deadlineMs - Date.now()),
    done: (error, result) => finish(error, result),
    fail: (error) => finish(error ?? new Error('failed')),
    succeed: (result) => finish(undefined, result),
  };
}

async function invoke(request) {
  let handler;
  try {
    handler = await loading;
  } catch (error) {
    reply({ type: 'result', id: request.id, ok: false, init: true, error: describe(error) });
    // A failed init leaves nothing to serve: the host starts a fresh process for the next invocation.
    setImmediate(() => process.exit(1));
    return;
  }
  let settled = false;
  const finish = (error, result, fatal = false) => {
    if (settled) return;
    settled = true;
    current = undefined;
    if (error !== undefined && error !== null) {
      reply({ type: 'result', id: request.id, ok: false, fatal, error: describe(error) });
      return;
    }
    let payload;
    try {
      payload = result === undefined ? undefined : JSON.stringify(result);
    } catch (serialization) {
      reply({ type: 'result', id: request.id, ok: false, error: describe(serialization) });
      return;
    }
    reply({ type: 'result', id: request.id, ok: true, payload });
  };
  current = { id: request.id, finish };
  const context = contextOf(request, finish);
  try {
    const returned = handler(request.event, context, finish);
    if (returned && typeof returned.then === 'function')
      returned.then(
        (value) => finish(undefined, value),
        (error) => finish(error ?? new Error('rejected')),
      );
    else if (handler.length < 3) finish(undefined, returned);
  } catch (error) {
    finish(error);
  }
}

process.on('message', (message) => {
  if (message && message.type === 'invoke') void invoke(message);
});

// Lambda ends the runtime on an error nothing caught; the invocation in flight reports it.
const crash = (error) => {
  if (current) current.finish(error, undefined, true);
  setImmediate(() => process.exit(1));
};
process.on('uncaughtException', crash);
process.on('unhandledRejection', crash);
process.on('disconnect', () => process.exit(0));

loading.then(
  () => reply({ type: 'ready', node: process.version }),
  (error) => reply({ type: 'init-error', error: describe(error) }),
);
