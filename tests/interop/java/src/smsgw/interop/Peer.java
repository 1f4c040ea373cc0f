package smsgw.interop;

import com.google.gson.Gson;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Date;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.jsmpp.bean.AlertNotification;
import org.jsmpp.bean.Alphabet;
import org.jsmpp.bean.BindType;
import org.jsmpp.bean.BroadcastSm;
import org.jsmpp.bean.CancelBroadcastSm;
import org.jsmpp.bean.CancelSm;
import org.jsmpp.bean.DataSm;
import org.jsmpp.bean.DeliverSm;
import org.jsmpp.bean.DeliveryReceipt;
import org.jsmpp.bean.ESMClass;
import org.jsmpp.bean.EnquireLink;
import org.jsmpp.bean.GeneralDataCoding;
import org.jsmpp.bean.NumberingPlanIndicator;
import org.jsmpp.bean.OptionalParameter;
import org.jsmpp.bean.OptionalParameters;
import org.jsmpp.bean.QueryBroadcastSm;
import org.jsmpp.bean.QuerySm;
import org.jsmpp.bean.RegisteredDelivery;
import org.jsmpp.bean.ReplaceSm;
import org.jsmpp.bean.SubmitMulti;
import org.jsmpp.bean.SubmitSm;
import org.jsmpp.bean.TypeOfNumber;
import org.jsmpp.extra.ProcessRequestException;
import org.jsmpp.extra.SessionState;
import org.jsmpp.session.BindParameter;
import org.jsmpp.session.BindRequest;
import org.jsmpp.session.BroadcastSmResult;
import org.jsmpp.session.DataSmResult;
import org.jsmpp.session.MessageReceiverListener;
import org.jsmpp.session.QueryBroadcastSmResult;
import org.jsmpp.session.QuerySmResult;
import org.jsmpp.session.SMPPServerSession;
import org.jsmpp.session.SMPPServerSessionListener;
import org.jsmpp.session.SMPPSession;
import org.jsmpp.session.ServerMessageReceiverListener;
import org.jsmpp.session.Session;
import org.jsmpp.session.SubmitMultiResult;
import org.jsmpp.session.SubmitSmResult;
import org.jsmpp.util.DeliveryReceiptState;
import org.jsmpp.util.MessageId;

/**
 * Every jsmpp peer of smsgw's interop tests in one JVM (a JVM start costs seconds on the
 * test machine). Commands arrive as JSON lines on stdin, each naming a peer; what the peers
 * see goes to stdout as JSON lines ({"peer": name, "ev": what, ...}) for pytest to assert.
 *
 * <p>Clients (ESMEs) bind to the gateway with jsmpp's SMPPSession; servers (SMSCs the gateway
 * binds to as a provider) use SMPPServerSessionListener. Receipts are parsed with jsmpp's own
 * DeliverSm.getShortMessageAsDeliveryReceipt() and written with DeliveryReceipt.toString().
 */
public final class Peer {
  private static final Gson GSON = new Gson();
  private static final HexFormat HEX = HexFormat.of();
  /** jsmpp's SMPPSession, with its (protected) enquire_link made callable. */
  static final class Client extends SMPPSession {
    void ping() throws Exception {
      sendEnquireLink(); // blocks until enquire_link_resp, or throws
    }
  }

  private static final Map<String, Client> CLIENTS = new ConcurrentHashMap<>();
  private static final Map<String, Server> SERVERS = new ConcurrentHashMap<>();
  private static final ExecutorService WORK = Executors.newCachedThreadPool();
  private static final ScheduledExecutorService TIMER = Executors.newScheduledThreadPool(2);

  private Peer() {}

  static synchronized void emit(String peer, String ev, Map<String, Object> fields) {
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("peer", peer);
    out.put("ev", ev);
    out.putAll(fields);
    System.out.println(GSON.toJson(out));
    System.out.flush();
  }

  static Map<String, Object> kv(Object... pairs) {
    Map<String, Object> m = new LinkedHashMap<>();
    for (int i = 0; i < pairs.length; i += 2) {
      m.put((String) pairs[i], pairs[i + 1]);
    }
    return m;
  }

  static Map<String, String> tlvs(OptionalParameter[] params) {
    Map<String, String> out = new LinkedHashMap<>();
    if (params != null) {
      for (OptionalParameter p : params) {
        byte[] raw = p.serialize(); // tag(2) length(2) value
        out.put(String.format("%04x", p.tag & 0xFFFF), HEX.formatHex(raw, 4, raw.length));
      }
    }
    return out;
  }

  public static void main(String[] args) throws Exception {
    BufferedReader in =
        new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    emit("jvm", "ready", kv());
    String line;
    while ((line = in.readLine()) != null) {
      if (line.isBlank()) {
        continue;
      }
      JsonObject cmd = JsonParser.parseString(line).getAsJsonObject();
      String peer = cmd.get("peer").getAsString();
      String op = cmd.get("op").getAsString();
      // Each command runs on its own thread: a blocking submit must not hold up the others.
      WORK.submit(
          () -> {
            try {
              run(peer, op, cmd);
            } catch (Exception e) {
              emit(peer, "error", kv("op", op, "error", e.toString()));
            }
          });
    }
    for (Client s : CLIENTS.values()) {
      s.unbindAndClose();
    }
    System.exit(0);
  }

  static void run(String peer, String op, JsonObject cmd) throws Exception {
    switch (op) {
      case "bind" -> bind(peer, cmd);
      case "submit" -> submit(peer, cmd);
      case "unbind" -> {
        Client s = CLIENTS.remove(peer);
        s.unbind(); // sends unbind and waits for unbind_resp
        emit(peer, "unbound", kv("status", 0));
        s.unbindAndClose();
      }
      case "enquire_link" -> {
        CLIENTS.get(peer).ping();
        emit(peer, "enquire_link_resp", kv("status", 0));
      }
      case "serve" -> {
        Server server = new Server(peer, cmd);
        SERVERS.put(peer, server);
        server.start();
      }
      case "mo" -> SERVERS.get(peer).mo(cmd);
      case "stop" -> SERVERS.remove(peer).stop();
      default -> emit(peer, "error", kv("op", op, "error", "unknown op"));
    }
  }

  // ---- the customer side: jsmpp's SMPPSession binding to the gateway -------------------

  static void bind(String peer, JsonObject cmd) throws Exception {
    BindType type =
        switch (cmd.get("type").getAsString()) {
          case "tx" -> BindType.BIND_TX;
          case "rx" -> BindType.BIND_RX;
          default -> BindType.BIND_TRX;
        };
    Client session = new Client();
    session.setEnquireLinkTimer(
        cmd.has("enquire_link_ms") ? cmd.get("enquire_link_ms").getAsInt() : 30000);
    session.setTransactionTimer(10000);
    session.setMessageReceiverListener(
        new MessageReceiverListener() {
          @Override
          public void onAcceptDeliverSm(DeliverSm d) throws ProcessRequestException {
            Map<String, Object> f =
                kv(
                    "esm_class", d.getEsmClass() & 0xFF,
                    "data_coding", d.getDataCoding() & 0xFF,
                    "source", d.getSourceAddr(),
                    "dest", d.getDestAddress(),
                    "short_message", HEX.formatHex(d.getShortMessage()),
                    "tlvs", tlvs(d.getOptionalParameters()));
            if (d.isSmscDeliveryReceipt()) {
              try {
                DeliveryReceipt r = d.getShortMessageAsDeliveryReceipt();
                f.put("receipt_id", r.getId());
                f.put("stat", r.getFinalStatus().name());
                f.put("err", r.getError());
                f.put("receipt_text", r.getText());
              } catch (Exception e) {
                f.put("receipt_error", e.toString());
              }
              emit(peer, "receipt", f);
            } else {
              emit(peer, "mo", f);
            }
          }

          @Override
          public void onAcceptAlertNotification(AlertNotification a) {}

          @Override
          public DataSmResult onAcceptDataSm(DataSm d, Session s) throws ProcessRequestException {
            throw new ProcessRequestException("data_sm not used", 0x03);
          }
        });
    session.addSessionStateListener(
        (SessionState now, SessionState old, Session s) ->
            emit(peer, "state", kv("state", now.name())));
    session.connectAndBind(
        cmd.get("host").getAsString(),
        cmd.get("port").getAsInt(),
        new BindParameter(
            type,
            cmd.get("system_id").getAsString(),
            cmd.get("password").getAsString(),
            "",
            TypeOfNumber.UNKNOWN,
            NumberingPlanIndicator.UNKNOWN,
            null));
    CLIENTS.put(peer, session);
    emit(peer, "bound", kv("type", type.name()));
  }

  static void submit(String peer, JsonObject cmd) throws Exception {
    Client session = CLIENTS.get(peer);
    byte[] body;
    int dataCoding = cmd.has("data_coding") ? cmd.get("data_coding").getAsInt() : 0;
    if (cmd.has("text")) {
      // How jsmpp users encode: UCS2 is UTF-16BE, the default alphabet here is plain text.
      body =
          cmd.get("text")
              .getAsString()
              .getBytes(dataCoding == 8 ? StandardCharsets.UTF_16BE : StandardCharsets.ISO_8859_1);
    } else {
      body = HEX.parseHex(cmd.get("hex").getAsString());
    }
    byte esm = 0;
    if (cmd.has("udh")) {
      byte[] udh = HEX.parseHex(cmd.get("udh").getAsString());
      byte[] both = new byte[udh.length + body.length];
      System.arraycopy(udh, 0, both, 0, udh.length);
      System.arraycopy(body, 0, both, udh.length, body.length);
      body = both;
      esm = 0x40;
    }
    List<OptionalParameter> params = new ArrayList<>();
    if (cmd.has("sar")) {
      JsonArray sar = cmd.get("sar").getAsJsonArray();
      params.add(OptionalParameters.newSarMsgRefNum(sar.get(0).getAsInt()));
      params.add(OptionalParameters.newSarTotalSegments(sar.get(1).getAsInt()));
      params.add(OptionalParameters.newSarSegmentSeqnum(sar.get(2).getAsInt()));
    }
    int rd = cmd.has("registered_delivery") ? cmd.get("registered_delivery").getAsInt() : 1;
    SubmitSmResult res =
        session.submitShortMessage(
            "",
            TypeOfNumber.INTERNATIONAL,
            NumberingPlanIndicator.ISDN,
            cmd.has("source") ? cmd.get("source").getAsString() : "4915100000001",
            TypeOfNumber.INTERNATIONAL,
            NumberingPlanIndicator.ISDN,
            cmd.get("dest").getAsString(),
            new ESMClass(esm),
            (byte) 0,
            (byte) 0,
            null,
            null,
            new RegisteredDelivery(rd),
            (byte) 0,
            new GeneralDataCoding(dataCoding == 8 ? Alphabet.ALPHA_UCS2 : Alphabet.ALPHA_DEFAULT),
            (byte) 0,
            body,
            params.toArray(new OptionalParameter[0]));
    emit(
        peer,
        "submit_resp",
        kv("tag", cmd.get("tag").getAsString(), "status", 0, "message_id", res.getMessageId()));
  }

  // ---- the provider side: an SMSC on jsmpp's server session ----------------------------

  /**
   * An SMSC answering submit_sm with hex ids and receipting them with the same number in
   * decimal in the text, the hex id in receipted_message_id (the mismatch that
   * --submit-id-format hex --receipt-id-format dec is for).
   */
  static final class Server implements ServerMessageReceiverListener {
    final String peer;
    final JsonObject cfg;
    final SMPPServerSessionListener listener;
    final List<SMPPServerSession> sessions = new CopyOnWriteArrayList<>();
    final AtomicLong ids = new AtomicLong(0xA0000000L);
    volatile boolean running = true;

    Server(String peer, JsonObject cfg) throws Exception {
      this.peer = peer;
      this.cfg = cfg;
      // jsmpp reports the port it was given, not the one bound: the caller picks a free one.
      this.listener = new SMPPServerSessionListener(cfg.get("port").getAsInt());
      listener.setMessageReceiverListener(this);
    }

    String str(String key, String dflt) {
      return cfg.has(key) ? cfg.get(key).getAsString() : dflt;
    }

    void start() {
      emit(peer, "listening", kv("port", listener.getPort()));
      WORK.submit(
          () -> {
            while (running) {
              try {
                SMPPServerSession s = listener.accept();
                WORK.submit(() -> handshake(s));
              } catch (Exception e) {
                if (running) {
                  emit(peer, "error", kv("op", "accept", "error", e.toString()));
                }
                return;
              }
            }
          });
    }

    void handshake(SMPPServerSession s) {
      try {
        BindRequest req = s.waitForBind(10000);
        String mode = req.getBindType().name();
        boolean trxAllowed =
            !cfg.has("no_transceiver") || !cfg.get("no_transceiver").getAsBoolean();
        if (req.getBindType() == BindType.BIND_TRX && !trxAllowed) {
          req.reject(0x0D); // ESME_RBINDFAIL: this SMSC takes transmitters and receivers only
          emit(peer, "bind_refused", kv("type", mode));
          return;
        }
        if (!req.getSystemId().equals(str("system_id", ""))
            || !req.getPassword().equals(str("password", ""))) {
          req.reject(0x0E);
          emit(peer, "bind_refused", kv("type", mode, "system_id", req.getSystemId()));
          return;
        }
        s.addSessionStateListener(
            (SessionState now, SessionState old, Session src) ->
                emit(peer, "state", kv("type", mode, "state", now.name())));
        req.accept(str("system_id", "smsc"));
        sessions.add(s);
        int version = req.getInterfaceVersion().value() & 0xFF;
        emit(peer, "bound", kv("type", mode, "interface_version", version));
      } catch (Exception e) {
        emit(peer, "error", kv("op", "bind", "error", e.toString()));
      }
    }

    SMPPServerSession receiver() {
      for (SMPPServerSession s : sessions) {
        if (s.getSessionState().isBound() && s.getSessionState().isReceivable()) {
          return s;
        }
      }
      throw new IllegalStateException("no receiver bind");
    }

    @Override
    public SubmitSmResult onAcceptSubmitSm(SubmitSm sm, SMPPServerSession source)
        throws ProcessRequestException {
      long n = ids.incrementAndGet();
      String hexId = Long.toHexString(n).toUpperCase();
      emit(
          peer,
          "submit",
          kv(
              "message_id", hexId,
              "decimal_id", Long.toString(n),
              "bind", source.getSessionState().name(),
              "dest", sm.getDestAddress(),
              "source", sm.getSourceAddr(),
              "esm_class", sm.getEsmClass() & 0xFF,
              "data_coding", sm.getDataCoding() & 0xFF,
              "registered_delivery", sm.getRegisteredDelivery() & 0xFF,
              "short_message", HEX.formatHex(sm.getShortMessage()),
              "tlvs", tlvs(sm.getOptionalParameters())));
      boolean before = false;
      if (cfg.has("receipt_before")) {
        for (var d : cfg.get("receipt_before").getAsJsonArray()) {
          before |= d.getAsString().equals(sm.getDestAddress());
        }
      }
      String when = before ? "before" : str("receipt", "after");
      if (when.equals("before")) {
        // deliver_sm (and its response) before this submit_sm_resp leaves.
        receipt(n, sm);
      } else if (when.equals("after")) {
        TIMER.schedule(
            () -> {
              try {
                receipt(n, sm);
              } catch (Exception e) {
                emit(peer, "error", kv("op", "receipt", "error", e.toString()));
              }
            },
            200,
            TimeUnit.MILLISECONDS);
      }
      try {
        return new SubmitSmResult(new MessageId(hexId), new OptionalParameter[0]);
      } catch (Exception e) {
        throw new ProcessRequestException(e.toString(), 0x08);
      }
    }

    void receipt(long n, SubmitSm sm) {
      String decimalId = Long.toString(n);
      Date now = new Date();
      DeliveryReceipt r =
          new DeliveryReceipt(decimalId, 1, 1, now, now, DeliveryReceiptState.DELIVRD, "000", "");
      try {
        receiver()
            .deliverShortMessage(
                "",
                TypeOfNumber.INTERNATIONAL,
                NumberingPlanIndicator.ISDN,
                sm.getDestAddress(),
                TypeOfNumber.INTERNATIONAL,
                NumberingPlanIndicator.ISDN,
                sm.getSourceAddr(),
                new ESMClass(0x04),
                (byte) 0,
                (byte) 0,
                new RegisteredDelivery(0),
                GeneralDataCoding.DEFAULT,
                r.toString().getBytes(StandardCharsets.ISO_8859_1),
                // SMPP 3.4 §5.3.2.12: the TLV carries the submit_sm_resp id (hex here).
                new OptionalParameter.COctetString(
                    OptionalParameter.Tag.RECEIPTED_MESSAGE_ID.code(),
                    Long.toHexString(n).toUpperCase()),
                new OptionalParameter.Byte(OptionalParameter.Tag.MESSAGE_STATE, (byte) 2));
        emit(peer, "receipt_sent", kv("decimal_id", decimalId));
      } catch (Exception e) {
        emit(peer, "error", kv("op", "receipt", "error", e.toString()));
      }
    }

    void mo(JsonObject cmd) throws Exception {
      boolean ucs2 = cmd.has("data_coding") && cmd.get("data_coding").getAsInt() == 8;
      byte[] text =
          cmd.get("text")
              .getAsString()
              .getBytes(ucs2 ? StandardCharsets.UTF_16BE : StandardCharsets.ISO_8859_1);
      boolean payload = cmd.has("payload") && cmd.get("payload").getAsBoolean();
      OptionalParameter[] params =
          payload
              ? new OptionalParameter[] {new OptionalParameter.OctetString((short) 0x0424, text)}
              : new OptionalParameter[0];
      receiver()
          .deliverShortMessage(
              "",
              TypeOfNumber.INTERNATIONAL,
              NumberingPlanIndicator.ISDN,
              cmd.get("source").getAsString(),
              TypeOfNumber.UNKNOWN,
              NumberingPlanIndicator.UNKNOWN,
              cmd.get("dest").getAsString(),
              new ESMClass(0),
              (byte) 0,
              (byte) 0,
              new RegisteredDelivery(0),
              ucs2 ? new GeneralDataCoding(Alphabet.ALPHA_UCS2) : GeneralDataCoding.DEFAULT,
              payload ? new byte[0] : text,
              params);
      emit(peer, "mo_sent", kv("tag", cmd.has("tag") ? cmd.get("tag").getAsString() : ""));
    }

    void stop() throws Exception {
      running = false;
      for (SMPPServerSession s : sessions) {
        s.unbindAndClose();
      }
      listener.close();
      emit(peer, "stopped", kv());
    }

    @Override
    public void onAcceptEnquireLink(EnquireLink el, Session s) {
      emit(peer, "enquire_link", kv("type", s.getSessionState().name()));
    }

    @Override
    public SubmitMultiResult onAcceptSubmitMulti(SubmitMulti m, SMPPServerSession s)
        throws ProcessRequestException {
      throw new ProcessRequestException("not supported", 0x03);
    }

    @Override
    public QuerySmResult onAcceptQuerySm(QuerySm q, SMPPServerSession s)
        throws ProcessRequestException {
      throw new ProcessRequestException("not supported", 0x03);
    }

    @Override
    public void onAcceptReplaceSm(ReplaceSm r, SMPPServerSession s) throws ProcessRequestException {
      throw new ProcessRequestException("not supported", 0x03);
    }

    @Override
    public void onAcceptCancelSm(CancelSm c, SMPPServerSession s) throws ProcessRequestException {
      throw new ProcessRequestException("not supported", 0x03);
    }

    @Override
    public BroadcastSmResult onAcceptBroadcastSm(BroadcastSm b, SMPPServerSession s)
        throws ProcessRequestException {
      throw new ProcessRequestException("not supported", 0x03);
    }

    @Override
    public void onAcceptCancelBroadcastSm(CancelBroadcastSm c, SMPPServerSession s)
        throws ProcessRequestException {
      throw new ProcessRequestException("not supported", 0x03);
    }

    @Override
    public QueryBroadcastSmResult onAcceptQueryBroadcastSm(QueryBroadcastSm q, SMPPServerSession s)
        throws ProcessRequestException {
      throw new ProcessRequestException("not supported", 0x03);
    }

    @Override
    public DataSmResult onAcceptDataSm(DataSm d, Session s) throws ProcessRequestException {
      throw new ProcessRequestException("not supported", 0x03);
    }
  }
}
