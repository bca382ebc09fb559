set -e
B=/tmp/sb-old
export SWITCHBOARD_DATA_DIR=/tmp/fx/data SWITCHBOARD_ADDR=127.0.0.1:18080 SWITCHBOARD_PUBLIC_URL=http://127.0.0.1:18080
$B serve > serve.log 2>&1 &
SP=$!
for i in $(seq 1 100); do curl -s -o /dev/null localhost:18080/healthz && break; sleep 0.3; done
U=localhost:18080
KEY=$($B partners create --name "Fixture Partner" | grep -o '"apiKey":"[^"]*"' | cut -d'"' -f4)
H="Authorization: Bearer $KEY"
IND=8f56c423-943d-5275-bb9f-9db8783c6dad
mk() { curl -s $U/v1/customers -H "$H" -H 'Content-Type: application/json' -d '{"space":"'$1'","industryId":"'$IND'","label":"'$1' label"}' | grep -o '"id":"[^"]*"' | head -1 | cut -d'"' -f4; }
C1=$(mk cafe); C2=$(mk bakery); C3=$(mk closed)
for C in $C1 $C2 $C3; do curl -s -X POST $U/v1/customers/$C/activate -H "$H" -H 'Content-Type: application/json' -d '{}' >/dev/null; done
curl -s -X PUT $U/v1/customers/$C1/contact-info -H "$H" -H 'Content-Type: application/json' -d '{"expectedVersion":2,"businessName":"Cafe Inc.","phoneNumber":"+14165550100","addressLine1":"1 King St W","postalCode":"M5H 1A1","province":"ON","country":"CA"}' >/dev/null
tok() { curl -s -X POST $U/v1/customers/$1/tokens -H "$H" -H 'Content-Type: application/json' -d '{"subject":"app","ttlSeconds":3600}' | grep -o '"accessToken":"[^"]*"' | cut -d'"' -f4; }
for C in $C1 $C2 $C3; do
  T="Authorization: Bearer $(tok $C)"
  curl -s $U/v1/contacts -H "$T" -H 'Content-Type: application/json' -d '{"mode":"AddOrUpdate","matchBy":"email","data":[
    {"email":"ann@example.com","firstName":"Ann","lastName":"Lee","phone":"+1 415 555 0100","channels":[{"type":"email","address":"ann.work@example.com"}],"consents":[{"topic":"marketing.sms","value":"True","source":"signup-form"}]},
    {"email":"bob@example.com","firstName":"Bob"},{"email":"cy@example.com","firstName":"Cy","phone":"+14155550123","consents":[{"topic":"sms","value":"True"}]}]}' >/dev/null
  AID=$(curl -s "$U/v1/contacts?email=ann@example.com" -H "$T" | grep -o '"id":"[^"]*"' | head -1 | cut -d'"' -f4)
  curl -s $U/v1/contacts/$AID/events -H "$T" -H 'Content-Type: application/json' -d '{"type":"order.shipped","message":"Order 42 shipped","sourceUrl":"https://shop.example/o/42"}' >/dev/null
  NUM=$(curl -s $U/v1/customers/$C/phone-numbers -H "$H" -H 'Content-Type: application/json' -d '{"phoneNumber":"+15005550006"}' | grep -o '"phoneNumber":"[^"]*"' | cut -d'"' -f4)
  curl -s $U/v1/messages -H "$T" -H 'Content-Type: application/json' -H "Idempotency-Key: table-$C" -d '{"to":"+14155550123","body":"Your table is ready"}' >/dev/null
  curl -s $U/v1/messages -H "$T" -H 'Content-Type: application/json' -d '{"to":"+14155550199","body":"Hello stranger"}' >/dev/null
  sleep 2
  $B sandbox inbound --from +14155550123 --to $NUM --body "Thanks, on my way" >/dev/null
  $B sandbox inbound --from +14155550177 --to $NUM --body "STOP" >/dev/null
done
curl -s -X POST $U/v1/customers/$C3/terminate -H "$H" -H 'Content-Type: application/json' -d '{"retention":{"strategy":"TEMPORARY","period":1}}' >/dev/null
sleep 2
printf "%s\n%s\n%s\n%s\n" "$KEY" $C1 $C2 $C3 > data/fixture.txt
kill -INT $SP; wait $SP || true
