'use strict';
// Every node-smpp peer of smsgw's interop tests in one process. Commands arrive as JSON
// lines on stdin, each naming a peer; what the peers see goes to stdout as JSON lines
// ({"peer": name, "ev": what, ...}) for pytest to assert. Clients (ESMEs) use
// smpp.connect, servers (SMSCs the gateway binds to as a provider) smpp.createServer.
const readline = require('readline');
const smpp = require('smpp');

const clients = {};
const servers = {};

function emit(peer, ev, fields) {
	process.stdout.write(JSON.stringify(Object.assign({peer: peer, ev: ev}, fields || {})) + '\n');
}

function hex(buf) {
	return Buffer.isBuffer(buf) ? buf.toString('hex') : Buffer.from(String(buf || ''), 'latin1').toString('hex');
}

// The raw octets of short_message: node-smpp decodes it into {message, udh} on receipt.
function rawMessage(pdu) {
	const sm = pdu.short_message;
	if (Buffer.isBuffer(sm)) return sm;
	if (!sm) return Buffer.alloc(0);
	const udh = sm.udh ? Buffer.concat(sm.udh) : Buffer.alloc(0);
	const text = pdu.data_coding === 8
		? Buffer.from(sm.message || '', 'utf16le').swap16() // UTF-16BE
		: Buffer.from(smpp.encodings.ASCII.encode(sm.message || '')); // GSM 03.38 septets
	return Buffer.concat([udh, text]);
}

function describe(pdu) {
	return {
		esm_class: pdu.esm_class,
		data_coding: pdu.data_coding,
		source: pdu.source_addr,
		dest: pdu.destination_addr,
		registered_delivery: pdu.registered_delivery,
		text: pdu.short_message && typeof pdu.short_message === 'object' && !Buffer.isBuffer(pdu.short_message)
			? pdu.short_message.message : undefined,
		udh: pdu.short_message && pdu.short_message.udh ? hex(Buffer.concat(pdu.short_message.udh)) : undefined,
		message_payload: pdu.message_payload ? (pdu.message_payload.message !== undefined
			? pdu.message_payload.message : String(pdu.message_payload)) : undefined,
		receipted_message_id: pdu.receipted_message_id,
		message_state: pdu.message_state,
		sar: pdu.sar_msg_ref_num !== undefined
			? [pdu.sar_msg_ref_num, pdu.sar_total_segments, pdu.sar_segment_seqnum] : undefined,
	};
}

// ---- the customer side -------------------------------------------------------------

function bind(peer, cmd) {
	const session = smpp.connect({host: cmd.host, port: cmd.port});
	clients[peer] = session;
	session.on('error', (e) => emit(peer, 'error', {op: 'socket', error: String(e)}));
	session.on('close', () => emit(peer, 'closed'));
	session.on('deliver_sm', (pdu) => {
		const f = describe(pdu);
		emit(peer, pdu.esm_class & 0x3C ? 'receipt' : 'mo', f);
		if (cmd.nack_deliveries) {
			// A generic_nack with status 0: a PDU this ESME could not take (SMPP 3.4 §4.3).
			session.send(new smpp.PDU('generic_nack', {sequence_number: pdu.sequence_number}));
		} else {
			session.send(pdu.response());
		}
	});
	session.on('enquire_link', (pdu) => session.send(pdu.response()));
	session.on('unbind', (pdu) => {
		session.send(pdu.response());
		emit(peer, 'unbound_by_peer');
		session.close();
	});
	session.on('connect', () => {
		const op = {trx: 'bind_transceiver', tx: 'bind_transmitter', rx: 'bind_receiver'}[cmd.type || 'trx'];
		session[op]({system_id: cmd.system_id, password: cmd.password}, (pdu) => {
			if (pdu.command_status === 0) emit(peer, 'bound', {type: op});
			else emit(peer, 'bind_failed', {type: op, status: pdu.command_status});
		});
	});
}

function submit(peer, cmd) {
	const session = clients[peer];
	const opts = {
		source_addr_ton: 1, source_addr_npi: 1, source_addr: cmd.source || '4915100000001',
		dest_addr_ton: 1, dest_addr_npi: 1, destination_addr: cmd.dest,
		registered_delivery: cmd.registered_delivery === undefined ? 1 : cmd.registered_delivery,
		data_coding: cmd.data_coding === undefined ? 0 : cmd.data_coding,
	};
	// node-smpp encodes the text for data_coding (GSM 03.38 septets for 0, UTF-16BE for 8)
	// and sets the UDHI bit itself when a UDH is given.
	opts.short_message = cmd.udh ? {udh: Buffer.from(cmd.udh, 'hex'), message: cmd.text} : cmd.text;
	if (cmd.sar) {
		opts.sar_msg_ref_num = cmd.sar[0];
		opts.sar_total_segments = cmd.sar[1];
		opts.sar_segment_seqnum = cmd.sar[2];
	}
	session.submit_sm(opts, (pdu) => {
		emit(peer, 'submit_resp', {tag: cmd.tag, status: pdu.command_status, message_id: pdu.message_id});
	});
}

function enquireLink(peer) {
	clients[peer].enquire_link({}, (pdu) => emit(peer, 'enquire_link_resp', {status: pdu.command_status}));
}

function unbind(peer) {
	const session = clients[peer];
	session.unbind({}, (pdu) => {
		emit(peer, 'unbound', {status: pdu.command_status});
		session.close();
	});
}

// ---- the provider side: an SMSC on smpp.createServer -------------------------------

// Answers submit_sm with hex ids and receipts them with the same number in decimal (the hex
// id in receipted_message_id): after
// the submit_sm_resp, or before it for the destinations in cmd.receipt_before.
function serve(peer, cmd) {
	const state = {sessions: [], next: 0xB0000000, cmd: cmd};
	const server = smpp.createServer((session) => {
		session.on('error', (e) => emit(peer, 'error', {op: 'socket', error: String(e)}));
		const onBind = (mode) => (pdu) => {
			if (mode === 'trx' && cmd.no_transceiver) {
				session.send(pdu.response({command_status: smpp.ESME_RBINDFAIL}));
				emit(peer, 'bind_refused', {type: mode});
				return;
			}
			if (pdu.system_id !== cmd.system_id || pdu.password !== cmd.password) {
				session.send(pdu.response({command_status: smpp.ESME_RINVPASWD}));
				emit(peer, 'bind_refused', {type: mode, system_id: pdu.system_id});
				return;
			}
			session.mode = mode;
			session.send(pdu.response({system_id: cmd.system_id}));
			state.sessions.push(session);
			emit(peer, 'bound', {type: mode, interface_version: pdu.interface_version});
		};
		session.on('bind_transceiver', onBind('trx'));
		session.on('bind_transmitter', onBind('tx'));
		session.on('bind_receiver', onBind('rx'));
		session.on('enquire_link', (pdu) => {
			session.send(pdu.response());
			emit(peer, 'enquire_link', {type: session.mode});
		});
		session.on('unbind', (pdu) => {
			session.send(pdu.response());
			emit(peer, 'unbind', {type: session.mode});
			session.close();
		});
		session.on('close', () => {
			state.sessions = state.sessions.filter((s) => s !== session);
			emit(peer, 'closed', {type: session.mode});
		});
		session.on('submit_sm', (pdu) => {
			const n = state.next++;
			const id = n.toString(16).toUpperCase();
			emit(peer, 'submit', Object.assign(describe(pdu), {
				message_id: id, decimal_id: String(n), type: session.mode,
				short_message: hex(rawMessage(pdu)),
			}));
			const resp = () => session.send(pdu.response({message_id: id}));
			if ((cmd.receipt_before || []).includes(pdu.destination_addr)) {
				receipt(peer, state, n, pdu, resp);
			} else {
				resp();
				if (cmd.receipt !== 'none') setTimeout(() => receipt(peer, state, n, pdu), 200);
			}
		});
	});
	server.on('error', (e) => emit(peer, 'error', {op: 'listen', error: String(e)}));
	server.listen(cmd.port || 0, '127.0.0.1', () => emit(peer, 'listening', {port: server.address().port}));
	state.server = server;
	servers[peer] = state;
}

function receiver(state) {
	const s = state.sessions.find((x) => x.mode === 'trx' || x.mode === 'rx');
	if (!s) throw new Error('no receiver bind');
	return s;
}

function pad(n) {
	return String(n).padStart(2, '0');
}

function receipt(peer, state, n, submitPdu, then) {
	const d = new Date();
	const date = [d.getUTCFullYear() % 100, d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(),
		d.getUTCMinutes()].map(pad).join(''); // YYMMDDhhmm (SMPP 3.4 Appendix B)
	const text = `id:${n} sub:001 dlvrd:001 submit date:${date} done date:${date} stat:DELIVRD err:000 text:`;
	receiver(state).deliver_sm({
		source_addr: submitPdu.destination_addr, destination_addr: submitPdu.source_addr,
		esm_class: 0x04, data_coding: 0, short_message: text,
		// SMPP 3.4 §5.3.2.12: the TLV carries the submit_sm_resp id (hex here), the text decimal.
		receipted_message_id: n.toString(16).toUpperCase(), message_state: 2,
	}, (resp) => {
		emit(peer, 'receipt_sent', {decimal_id: String(n), status: resp.command_status});
		if (then) then();
	});
}

function mo(peer, cmd) {
	const state = servers[peer];
	const opts = {
		source_addr_ton: 1, source_addr_npi: 1, source_addr: cmd.source,
		destination_addr: cmd.dest, data_coding: cmd.data_coding || 0,
	};
	if (cmd.payload) opts.message_payload = cmd.text;
	else opts.short_message = cmd.text;
	receiver(state).deliver_sm(opts, (resp) => emit(peer, 'mo_sent', {tag: cmd.tag, status: resp.command_status}));
}

function stop(peer) {
	const state = servers[peer];
	delete servers[peer];
	state.sessions.forEach((s) => s.close());
	state.server.close(() => emit(peer, 'stopped'));
}

const ops = {bind, submit, enquire_link: enquireLink, unbind, serve, mo, stop};

readline.createInterface({input: process.stdin}).on('line', (line) => {
	if (!line.trim()) return;
	const cmd = JSON.parse(line);
	try {
		ops[cmd.op](cmd.peer, cmd);
	} catch (e) {
		emit(cmd.peer, 'error', {op: cmd.op, error: String(e && e.stack || e)});
	}
}).on('close', () => process.exit(0));

emit('node', 'ready', {smpp: require('smpp/package.json').version});
