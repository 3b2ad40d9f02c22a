// The registry: keys in the 64- or 32-bit view, values in their JSON form (docs/ops.md).
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Win32;

namespace Pushinstall.Agent
{
    public static class RegistryOp
    {
        private static readonly Regex KeyPath = new Regex(
            @"^(?:Registry::)?(HKLM|HKEY_LOCAL_MACHINE|HKCU|HKEY_CURRENT_USER|HKU|HKEY_USERS|HKCR|HKEY_CLASSES_ROOT):?(?:\\(.*))?$",
            RegexOptions.IgnoreCase | RegexOptions.Singleline);

        private static RegistryHive Hive(string name)
        {
            switch (name.ToUpperInvariant())
            {
                case "HKLM":
                case "HKEY_LOCAL_MACHINE":
                    return RegistryHive.LocalMachine;
                case "HKCU":
                case "HKEY_CURRENT_USER":
                    return RegistryHive.CurrentUser;
                case "HKU":
                case "HKEY_USERS":
                    return RegistryHive.Users;
                default:
                    return RegistryHive.ClassesRoot;
            }
        }

        /// <summary>The key, or null when it does not exist (`create` makes it).</summary>
        public static RegistryKey Open(string path, string view, bool writable, bool create)
        {
            Match match = KeyPath.Match(path);
            if (!match.Success)
            {
                throw new OpException("InvalidArgument", "registry key must start with HKLM:, HKCU:, HKU: or HKCR: (" + path + ")");
            }
            if (view != "64" && view != "32")
            {
                throw new OpException("InvalidArgument", "view must be \"64\" or \"32\"");
            }
            string subKey = match.Groups[2].Value.Trim('\\');
            RegistryKey hiveRoot = Core.Windows.OpenBaseKey(Hive(match.Groups[1].Value), view, ref subKey);
            if (subKey == "")
            {
                return hiveRoot;
            }
            using (hiveRoot)
            {
                return create ? hiveRoot.CreateSubKey(subKey) : hiveRoot.OpenSubKey(subKey, writable);
            }
        }

        public static RegistryKey Open(string path)
        {
            return Open(path, "64", false, false);
        }

        public static bool KeyExists(string path)
        {
            using (RegistryKey key = Open(path))
            {
                return key != null;
            }
        }

        /// <summary>A value's raw data, or null (missing key or value).</summary>
        public static object Value(string path, string name)
        {
            using (RegistryKey key = Open(path))
            {
                return key == null ? null : key.GetValue(name, null);
            }
        }

        public static bool HasValue(RegistryKey key, string name)
        {
            foreach (string one in key.GetValueNames())
            {
                if (string.Equals(one, name, StringComparison.OrdinalIgnoreCase))
                {
                    return true;
                }
            }
            return false;
        }

        /// <summary>Raw .NET registry data -> the fact's JSON form.</summary>
        public static object ToJson(object raw, RegistryValueKind kind)
        {
            if (raw == null)
            {
                return null;
            }
            switch (kind)
            {
                case RegistryValueKind.DWord:
                    return unchecked((uint)Convert.ToInt32(raw, CultureInfo.InvariantCulture));
                case RegistryValueKind.QWord:
                    return unchecked((ulong)Convert.ToInt64(raw, CultureInfo.InvariantCulture));
                case RegistryValueKind.Binary:
                    return Convert.ToBase64String((byte[])raw);
                case RegistryValueKind.MultiString:
                    return (string[])raw;
                default:
                    return Convert.ToString(raw, CultureInfo.InvariantCulture);
            }
        }

        public static object Fact(Args query)
        {
            string path = query.Str("key");
            string name = query.Str("name", "");
            Dictionary<string, object> fact = new Dictionary<string, object>();
            fact["key_exists"] = false;
            fact["exists"] = false;
            fact["value"] = null;
            fact["type"] = null;
            using (RegistryKey key = Open(path, query.Str("view", "64"), false, false))
            {
                if (key == null)
                {
                    return fact;
                }
                fact["key_exists"] = true;
                if (HasValue(key, name))
                {
                    RegistryValueKind kind = key.GetValueKind(name);
                    // ExpandString stays unexpanded: it is compared with what set_registry writes
                    object raw = key.GetValue(name, null, RegistryValueOptions.DoNotExpandEnvironmentNames);
                    fact["exists"] = true;
                    fact["type"] = kind.ToString();
                    fact["value"] = ToJson(raw, kind);
                }
            }
            return fact;
        }
    }
}
