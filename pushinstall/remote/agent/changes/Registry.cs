// set_registry: a value in its JSON form (docs/ops.md) written in the 64- or 32-bit view.
using System;
using System.Collections.Generic;
using System.Globalization;
using Microsoft.Win32;

namespace Pushinstall.Agent
{
    public static class RegistryChanges
    {
        private static RegistryValueKind Kind(string type)
        {
            switch (type)
            {
                case "String": return RegistryValueKind.String;
                case "ExpandString": return RegistryValueKind.ExpandString;
                case "DWord": return RegistryValueKind.DWord;
                case "QWord": return RegistryValueKind.QWord;
                case "MultiString": return RegistryValueKind.MultiString;
                case "Binary": return RegistryValueKind.Binary;
                default:
                    throw new OpException("InvalidArgument", "type must be String, ExpandString, DWord, QWord, MultiString or Binary");
            }
        }

        private static decimal Number(object value, string type)
        {
            if (value is int || value is long || value is decimal)
            {
                decimal number = Convert.ToDecimal(value, CultureInfo.InvariantCulture);
                if (decimal.Truncate(number) == number)
                {
                    return number;
                }
            }
            throw new OpException("InvalidArgument", "a " + type + " value must be an integer");
        }

        /// <summary>A JSON value -> the .NET data RegistryKey.SetValue takes for that kind.</summary>
        private static object ToData(object value, RegistryValueKind kind, string type)
        {
            switch (kind)
            {
                case RegistryValueKind.DWord:
                {
                    decimal number = Number(value, type);
                    if (number < 0 || number > uint.MaxValue)
                    {
                        throw new OpException("InvalidArgument", "a DWord value must be an integer 0..2**32-1");
                    }
                    return unchecked((int)(uint)number);
                }
                case RegistryValueKind.QWord:
                {
                    decimal number = Number(value, type);
                    if (number < 0 || number > ulong.MaxValue)
                    {
                        throw new OpException("InvalidArgument", "a QWord value must be an integer 0..2**64-1");
                    }
                    return unchecked((long)(ulong)number);
                }
                case RegistryValueKind.MultiString:
                {
                    object[] items = value as object[];
                    if (items == null)
                    {
                        throw new OpException("InvalidArgument", "a MultiString value must be a list of strings");
                    }
                    string[] strings = new string[items.Length];
                    for (int i = 0; i < items.Length; i++)
                    {
                        strings[i] = items[i] as string;
                        if (strings[i] == null)
                        {
                            throw new OpException("InvalidArgument", "a MultiString value must be a list of strings");
                        }
                    }
                    return strings;
                }
                case RegistryValueKind.Binary:
                    try
                    {
                        return Convert.FromBase64String((string)value);
                    }
                    catch (Exception)
                    {
                        throw new OpException("InvalidArgument", "a Binary value must be base64");
                    }
                default:
                    if (!(value is string))
                    {
                        throw new OpException("InvalidArgument", "a " + type + " value must be a string");
                    }
                    return value;
            }
        }

        public static object Set(Args args)
        {
            string path = args.Str("key");
            string name = args.Str("name");
            object value = args.Raw("value");
            string type = args.Str("type");
            RegistryValueKind kind = Kind(type);
            object data = ToData(value, kind, type);
            string wanted = Json.Write(RegistryOp.ToJson(data, kind));
            Dictionary<string, object> result = new Dictionary<string, object>();
            using (RegistryKey key = RegistryOp.Open(path, args.Str("view", "64"), true, true))
            {
                if (RegistryOp.HasValue(key, name))
                {
                    RegistryValueKind current = key.GetValueKind(name);
                    object raw = key.GetValue(name, null, RegistryValueOptions.DoNotExpandEnvironmentNames);
                    if (current == kind && Json.Write(RegistryOp.ToJson(raw, current)) == wanted)
                    {
                        result["changed"] = false;
                        return result;
                    }
                }
                key.SetValue(name, data, kind);
            }
            result["changed"] = true;
            return result;
        }
    }
}
