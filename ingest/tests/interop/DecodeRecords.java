// Decodes Kafka record values with the Java Avro reference, as a Java consumer of
// the topic would: BinaryMessageDecoder (single-object encoding) built from the
// .avsc alone, which finds the writer schema by its fingerprint.
//
//   java -cp 'LIBS/*' DecodeRecords.java SCAN_EVENT.avsc [EPCIS_EVENT.avsc] RECORDS
//
// The topic holds both record types: each value is read by the decoder of the
// schema its fingerprint names, as a consumer with both schemas would.
//
// RECORDS holds each value as a 4-byte big-endian length and its bytes. One line
// per record goes to stdout, in the field order of the schema, floats as the hex
// of their little-endian bytes so every language prints them alike.

import java.io.DataInputStream;
import java.io.EOFException;
import java.io.File;
import java.io.FileInputStream;
import java.io.BufferedInputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;

public class DecodeRecords {
  static String hex(byte[] b) {
    StringBuilder s = new StringBuilder();
    for (byte x : b) s.append(String.format("%02x", x));
    return s.toString();
  }

  static String floatHex(Object f) {
    if (f == null) return "null";
    return hex(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat((Float) f).array());
  }

  public static void main(String[] args) throws Exception {
    Schema schema = new Schema.Parser().parse(new File(args[0]));
    BinaryMessageDecoder<GenericRecord> decoder =
        new BinaryMessageDecoder<>(GenericData.get(), schema);
    BinaryMessageDecoder<GenericRecord> epcis = args.length > 2
        ? new BinaryMessageDecoder<>(GenericData.get(), new Schema.Parser().parse(new File(args[1])))
        : null;
    String records = args[args.length - 1];
    StringBuilder out = new StringBuilder();
    try (DataInputStream in = new DataInputStream(new BufferedInputStream(new FileInputStream(records)))) {
      while (true) {
        int n;
        try { n = in.readInt(); } catch (EOFException e) { break; }
        byte[] value = new byte[n];
        in.readFully(value);
        GenericRecord r;
        try {
          r = decoder.decode(value);
        } catch (org.apache.avro.message.MissingSchemaException e) {
          if (epcis == null) throw e;
          GenericRecord k = epcis.decode(value);
          ByteBuffer ks = (ByteBuffer) k.get("signature");
          byte[] ksBytes = new byte[ks.remaining()];
          ks.duplicate().get(ksBytes);
          out.append(String.join("|", "epcis", k.get("event_id").toString(),
              hex(k.get("event").toString().getBytes(java.nio.charset.StandardCharsets.UTF_8)),
              k.get("device_id").toString(), hex(ksBytes)));
          out.append('\n');
          continue;
        }
        List<String> items = new ArrayList<>();
        for (Object i : (List<?>) r.get("item_ids")) items.add(i.toString());
        List<String> docs = new ArrayList<>();
        for (Object t : (List<?>) r.get("biz_transactions")) {
          GenericRecord d = (GenericRecord) t;
          docs.add(d.get("type") + ":" + d.get("id"));
        }
        ByteBuffer sig = (ByteBuffer) r.get("signature");
        byte[] sigBytes = new byte[sig.remaining()];
        sig.duplicate().get(sigBytes);
        out.append(String.join("|",
            r.get("event_id").toString(), r.get("event_time").toString(),
            r.get("event_timezone_offset").toString(), r.get("action").toString(),
            r.get("biz_step").toString(), r.get("disposition").toString(),
            String.join(",", items), r.get("read_point").toString(),
            r.get("biz_location").toString(), r.get("country").toString(),
            String.join(";", docs), floatHex(r.get("temperature_c")),
            floatHex(r.get("relative_humidity_pct")), r.get("device_id").toString(),
            hex(sigBytes)));
        out.append('\n');
      }
    }
    System.out.print(out);
  }
}
