// MQTT Signature-mode credentials (docs/spec.md 3.2), computed in the browser with WebCrypto: the secret never
// leaves the page. Password = Base64(HMAC-SHA1(key = secret, data = clientId)).

export function signatureUsername(accessKeyId: string, instanceId: string): string {
  return `Signature|${accessKeyId}|${instanceId}`;
}

export async function hmacSha1Base64(secret: string, data: string): Promise<string> {
  const enc = new TextEncoder();
  const key = await crypto.subtle.importKey('raw', enc.encode(secret), { name: 'HMAC', hash: 'SHA-1' }, false, ['sign']);
  const sig = new Uint8Array(await crypto.subtle.sign('HMAC', key, enc.encode(data)));
  let bin = '';
  for (const b of sig) bin += String.fromCharCode(b);
  return btoa(bin);
}
