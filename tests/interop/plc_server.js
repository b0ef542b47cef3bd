#!/usr/bin/env node
// A small OPC UA server built on node-opcua (not asyncua) that looks like a typical PLC of a
// packaging line: PackTags-style tags of one filler, none of the asbuilt model. The connector's
// interoperability test (tests/integration/test_interop_nodeopcua.py) subscribes to it.
//
//   node plc_server.js --port P --truth FILE --pki DIR [--ticks N] [--tick-ms MS] [--wait-items K]
//
// Binds 127.0.0.1 only. Prints "ready <endpoint>" when listening. With --wait-items K it holds
// the schedule until a client monitors K items (so nothing happens before the connector looks),
// then plays N ticks of a deterministic schedule, one every MS ms, each tick's changes with one
// SourceTimestamp = now. Every value it sets is written as one JSON line to FILE (the ground
// truth); after the last tick it writes {"done": true, ...} with the final counts, prints
// "done" and keeps serving until SIGTERM/SIGINT.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const {
  OPCUAServer,
  OPCUACertificateManager,
  DataType,
  StatusCodes,
  nodesets,
} = require("node-opcua");

function parseArgs(argv) {
  const args = { ticks: 100, tickMs: 100, waitItems: 0, truth: "", pki: "", port: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const [key, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`missing value after ${key}`);
    if (key === "--port") args.port = Number(value);
    else if (key === "--ticks") args.ticks = Number(value);
    else if (key === "--tick-ms") args.tickMs = Number(value);
    else if (key === "--wait-items") args.waitItems = Number(value);
    else if (key === "--truth") args.truth = value;
    else if (key === "--pki") args.pki = value;
    else throw new Error(`unknown option ${key}`);
  }
  if (!args.port || !args.truth || !args.pki) {
    throw new Error("usage: plc_server.js --port P --truth FILE --pki DIR [--ticks N] ...");
  }
  return args;
}

// PackTags StateCurrent numbers (PackML as PLCs expose it: Clearing 1 ... Complete 17).
const S = { Stopped: 2, Starting: 3, Idle: 4, Execute: 6, Stopping: 7, Resetting: 15 };
const MODE_PRODUCE = 1;
const MODE_MAINTENANCE = 2;
const CYCLE = 20; // ticks per production cycle
const BAD_TICK = 25; // SealTemperature reports BadSensorFailure on this tick only

// Where one tick of the schedule leaves the machine (pure: same tick -> same state).
function phase(tick) {
  const cycle = Math.floor((tick - 1) / CYCLE);
  const p = (tick - 1) % CYCLE;
  if (p === 0) return { state: S.Starting, mode: MODE_PRODUCE, stop: 0 };
  if (p <= 13) return { state: S.Execute, mode: MODE_PRODUCE, stop: 0 };
  if (p === 14) return { state: S.Stopping, mode: MODE_PRODUCE, stop: 100 + cycle };
  // the second cycle's stop is spent in maintenance mode
  if (p <= 17) return { state: S.Stopped, mode: cycle === 1 ? MODE_MAINTENANCE : MODE_PRODUCE, stop: 100 + cycle };
  if (p === 18) return { state: S.Resetting, mode: MODE_PRODUCE, stop: 100 + cycle };
  return { state: S.Idle, mode: MODE_PRODUCE, stop: 0 };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const truth = fs.openSync(args.truth, "w");
  const record = (obj) => fs.writeSync(truth, JSON.stringify(obj) + "\n");

  const certificateManager = new OPCUACertificateManager({
    rootFolder: path.join(args.pki, "server"),
    automaticallyAcceptUnknownCertificate: true,
  });
  const userCertificateManager = new OPCUACertificateManager({
    rootFolder: path.join(args.pki, "user"),
    automaticallyAcceptUnknownCertificate: true,
  });
  const server = new OPCUAServer({
    port: args.port,
    host: "127.0.0.1", // bind loopback only
    hostname: "127.0.0.1", // and advertise it in the endpoint URLs
    resourcePath: "/plc",
    nodeset_filename: [nodesets.standard],
    serverCertificateManager: certificateManager,
    userCertificateManager,
    allowAnonymous: true,
    buildInfo: { productName: "asbuilt interop PLC (node-opcua)", buildNumber: "1" },
  });
  await server.initialize();

  const addressSpace = server.engine.addressSpace;
  const ns = addressSpace.getOwnNamespace(); // ns=1
  const filler = ns.addObject({
    organizedBy: addressSpace.rootFolder.objects,
    browseName: "Filler",
    nodeId: "s=Filler",
  });
  const vars = {};
  const add = (name, dataType, value) => {
    vars[name] = ns.addVariable({
      componentOf: filler,
      browseName: name,
      nodeId: `s=Filler.${name}`,
      dataType,
      minimumSamplingInterval: 0, // exception-based: every change is reported
      accessLevel: "CurrentRead",
      userAccessLevel: "CurrentRead",
    });
    vars[name].$type = dataType;
  };
  add("StateCurrent", DataType.Int32);
  add("UnitModeCurrent", DataType.Int32);
  add("StopReason", DataType.Int32);
  add("ProdProcessedCount", DataType.UInt32);
  add("ProdDefectiveCount", DataType.UInt32);
  add("SealTemperature", DataType.Double);

  let tick = 0;
  const last = {};
  // Set the changed values of one tick, all with the same SourceTimestamp, and record them.
  const apply = (values, bad = {}) => {
    const ts = new Date();
    for (const [name, value] of Object.entries(values)) {
      const status = bad[name] || StatusCodes.Good;
      if (last[name] === value && status === StatusCodes.Good && last[`${name}:status`] === status) {
        continue;
      }
      last[name] = value;
      last[`${name}:status`] = status;
      vars[name].setValueFromSource({ dataType: vars[name].$type, value }, status, ts);
      record({ tick, ts: ts.toISOString(), node: `ns=1;s=Filler.${name}`, name, value, status: status.name });
    }
  };

  let processed = 0;
  let defective = 0;
  const temperature = (t) => Math.round((160 + (t % 10) * 0.25) * 100) / 100;
  apply({
    StateCurrent: S.Idle,
    UnitModeCurrent: MODE_PRODUCE,
    StopReason: 0,
    ProdProcessedCount: 0,
    ProdDefectiveCount: 0,
    SealTemperature: temperature(0),
  });

  await server.start();
  const endpoint = server.getEndpointUrl();
  process.stdout.write(`ready ${endpoint}\n`);

  const monitoredItems = () => {
    let n = 0;
    for (const session of Object.values(server.engine._sessions || {})) {
      for (const sub of session.publishEngine.subscriptions) n += sub.monitoredItemCount;
    }
    return n;
  };

  const step = () => {
    tick += 1;
    const { state, mode, stop } = phase(tick);
    if (state === S.Execute) {
      processed += 1;
      if (processed % 5 === 0) defective += 1;
    }
    const values = {
      StateCurrent: state,
      UnitModeCurrent: mode,
      StopReason: stop,
      ProdProcessedCount: processed,
      ProdDefectiveCount: defective,
      SealTemperature: temperature(tick),
    };
    apply(values, tick === BAD_TICK ? { SealTemperature: StatusCodes.BadSensorFailure } : {});
    if (tick >= args.ticks) {
      record({ done: true, ticks: tick, processed, defective });
      fs.closeSync(truth);
      process.stdout.write(`done processed=${processed} defective=${defective}\n`);
      return;
    }
    setTimeout(step, args.tickMs);
  };

  const waitThenRun = () => {
    const n = monitoredItems();
    if (n < args.waitItems) {
      setTimeout(waitThenRun, 50);
      return;
    }
    process.stdout.write(`running: ${n} monitored items, ${args.ticks} ticks of ${args.tickMs} ms\n`);
    setTimeout(step, args.tickMs);
  };
  waitThenRun();

  const shutdown = async () => {
    await server.shutdown(0);
    process.exit(0);
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
}

main().catch((err) => {
  process.stderr.write(`plc_server: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
