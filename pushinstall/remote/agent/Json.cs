// JSON out (our own writer: invariant culture, UTF-8 safe, no depth limit), and sealed secrets in.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Pushinstall.Agent
{
    /// <summary>Writes answers as JSON; times as ISO 8601 UTC to the second.</summary>
    public static class Json
    {
        public static string Write(object value)
        {
            StringBuilder builder = new StringBuilder();
            Append(builder, value);
            return builder.ToString();
        }

        public static string Time(DateTime time)
        {
            return time.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
        }

        private static void Append(StringBuilder builder, object value)
        {
            if (value == null || value is DBNull)
            {
                builder.Append("null");
            }
            else if (value is bool)
            {
                builder.Append((bool)value ? "true" : "false");
            }
            else if (value is string || value is char || value is Enum)
            {
                AppendString(builder, Convert.ToString(value, CultureInfo.InvariantCulture));
            }
            else if (value is DateTime)
            {
                AppendString(builder, Time((DateTime)value));
            }
            else if (value is double || value is float)
            {
                double number = Convert.ToDouble(value, CultureInfo.InvariantCulture);
                builder.Append(double.IsNaN(number) || double.IsInfinity(number)
                    ? "null" : number.ToString("R", CultureInfo.InvariantCulture));
            }
            else if (value is IConvertible && Type.GetTypeCode(value.GetType()) >= TypeCode.SByte
                     && Type.GetTypeCode(value.GetType()) <= TypeCode.Decimal)
            {
                builder.Append(((IConvertible)value).ToString(CultureInfo.InvariantCulture));
            }
            else if (value is IDictionary)
            {
                builder.Append('{');
                bool first = true;
                foreach (DictionaryEntry entry in (IDictionary)value)
                {
                    if (!first)
                    {
                        builder.Append(',');
                    }
                    first = false;
                    AppendString(builder, Convert.ToString(entry.Key, CultureInfo.InvariantCulture));
                    builder.Append(':');
                    Append(builder, entry.Value);
                }
                builder.Append('}');
            }
            else if (value is IEnumerable)
            {
                builder.Append('[');
                bool first = true;
                foreach (object item in (IEnumerable)value)
                {
                    if (!first)
                    {
                        builder.Append(',');
                    }
                    first = false;
                    Append(builder, item);
                }
                builder.Append(']');
            }
            else
            {
                AppendString(builder, value.ToString());
            }
        }

        private static void AppendString(StringBuilder builder, string text)
        {
            builder.Append('"');
            foreach (char ch in text)
            {
                if (ch == '"' || ch == '\\')
                {
                    builder.Append('\\').Append(ch);
                }
                else if (ch < ' ' || ch == '\u2028' || ch == '\u2029')
                {
                    builder.Append("\\u").Append(((int)ch).ToString("x4", CultureInfo.InvariantCulture));
                }
                else
                {
                    builder.Append(ch);
                }
            }
            builder.Append('"');
        }
    }

    /// <summary>Secret request fields arrive as {"sealed": base64} encrypted (RSA OAEP-SHA1)
    /// to a key pair made in this process; the private half never leaves its memory.</summary>
    public static class Sealed
    {
        public const string Field = "sealed";
        private static RSACryptoServiceProvider key;
        private static readonly object Lock = new object();

        private static RSACryptoServiceProvider Key()
        {
            lock (Lock)
            {
                if (key == null)
                {
                    CspParameters parameters = new CspParameters();
                    parameters.Flags = CspProviderFlags.CreateEphemeralKey;
                    key = new RSACryptoServiceProvider(2048, parameters);
                    key.PersistKeyInCsp = false;
                }
                return key;
            }
        }

        /// <summary>`{"modulus", "exponent"}` (base64, big-endian) of this session's key.</summary>
        public static string PublicKey()
        {
            RSAParameters numbers = Key().ExportParameters(false);
            Dictionary<string, object> result = new Dictionary<string, object>();
            result["modulus"] = Convert.ToBase64String(numbers.Modulus);
            result["exponent"] = Convert.ToBase64String(numbers.Exponent);
            return Json.Write(result);
        }

        /// <summary>The tree with every {"sealed": ...} object replaced by its plain text.</summary>
        public static object Open(object value)
        {
            Dictionary<string, object> table = value as Dictionary<string, object>;
            if (table != null)
            {
                if (table.Count == 1 && table.ContainsKey(Field) && table[Field] is string)
                {
                    return Decrypt((string)table[Field]);
                }
                foreach (string name in new List<string>(table.Keys))
                {
                    table[name] = Open(table[name]);
                }
                return table;
            }
            object[] list = value as object[];
            if (list != null)
            {
                for (int i = 0; i < list.Length; i++)
                {
                    list[i] = Open(list[i]);
                }
            }
            return value;
        }

        private static string Decrypt(string sealedText)
        {
            try
            {
                byte[] plain = Key().Decrypt(Convert.FromBase64String(sealedText), true);
                return new UTF8Encoding(false, true).GetString(plain);
            }
            catch (CryptographicException)
            {
                throw new OpException("InvalidArgument", "a sealed value does not open with this session's key");
            }
            catch (FormatException)
            {
                throw new OpException("InvalidArgument", "a sealed value is not base64");
            }
        }
    }
}
