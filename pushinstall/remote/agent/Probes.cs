// Fact kinds the preflight asks before an install: `ini`, `installer_running`, `winrm_quota`.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Win32;

namespace Pushinstall.Agent
{
    public static class Probes
    {
        private const string WsMan = @"HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WSMAN";
        private const string Packages = @"HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\Packages";
        public const string InstallerMutex = @"Global\_MSIExecute";
        private static readonly string[] Installers = new string[] { "msiexec", "UnifiedAgent" };

        /// <summary>Lines as Python's str.splitlines() cuts them (the lab's twin).</summary>
        public static List<string> SplitLines(string text)
        {
            List<string> lines = new List<string>();
            int start = 0;
            int i = 0;
            while (i < text.Length)
            {
                char c = text[i];
                bool breaks = c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == '\x1c' || c == '\x1d'
                    || c == '\x1e' || c == '\x85' || c == '\u2028' || c == '\u2029';
                if (!breaks)
                {
                    i++;
                    continue;
                }
                lines.Add(text.Substring(start, i - start));
                i += c == '\r' && i + 1 < text.Length && text[i + 1] == '\n' ? 2 : 1;
                start = i;
            }
            if (start < text.Length)
            {
                lines.Add(text.Substring(start));
            }
            return lines;
        }

        /// <summary>One `key=value` of a `[section]`: UTF-8 (invalid bytes replaced, BOM
        /// ignored), section and key case-insensitive, the value trimmed.</summary>
        public static object Ini(Args query)
        {
            string path = query.Str("path");
            string wanted = query.Str("section");
            string wantedKey = query.Str("key");
            Dictionary<string, object> fact = new Dictionary<string, object>();
            fact["exists"] = false;
            fact["found"] = false;
            fact["value"] = null;
            if (!System.IO.File.Exists(path))
            {
                return fact;
            }
            fact["exists"] = true;
            byte[] bytes;
            using (FileStream stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
            using (MemoryStream copy = new MemoryStream())
            {
                stream.CopyTo(copy);
                bytes = copy.ToArray();
            }
            string text = new UTF8Encoding(false, false).GetString(bytes).TrimStart('\uFEFF');
            string section = null;
            foreach (string line in SplitLines(text))
            {
                string trimmed = line.Trim();
                if (trimmed.StartsWith("[", StringComparison.Ordinal) && trimmed.EndsWith("]", StringComparison.Ordinal)
                    && trimmed.Length >= 2)
                {
                    section = trimmed.Substring(1, trimmed.Length - 2).Trim();
                }
                else if (section != null && string.Equals(section, wanted, StringComparison.OrdinalIgnoreCase)
                         && trimmed.IndexOf('=') >= 0)
                {
                    int equals = trimmed.IndexOf('=');
                    if (string.Equals(trimmed.Substring(0, equals).Trim(), wantedKey, StringComparison.OrdinalIgnoreCase))
                    {
                        fact["found"] = true;
                        fact["value"] = trimmed.Substring(equals + 1).Trim();
                        return fact;
                    }
                }
            }
            return fact;
        }

        /// <summary>Another install holds the Windows Installer: its mutex is taken, or an
        /// msiexec/UnifiedAgent process other than this one runs.</summary>
        public static object InstallerRunning(Args query)
        {
            SortedSet<string> names = new SortedSet<string>(StringComparer.OrdinalIgnoreCase);
            foreach (string name in Core.Windows.OtherProcessNames())
            {
                string bare = name.EndsWith(".exe", StringComparison.OrdinalIgnoreCase) ? name.Substring(0, name.Length - 4) : name;
                foreach (string installer in Installers)
                {
                    if (string.Equals(bare, installer, StringComparison.OrdinalIgnoreCase))
                    {
                        names.Add(installer + ".exe");
                    }
                }
            }
            bool mutex = Core.Windows.NamedMutexExists(InstallerMutex);
            Dictionary<string, object> fact = new Dictionary<string, object>();
            fact["running"] = mutex || names.Count > 0;
            fact["processes"] = new List<string>(names);
            return fact;
        }

        private static object Integer(object raw)
        {
            if (raw is int || raw is long)
            {
                return Convert.ToInt64(raw, CultureInfo.InvariantCulture);
            }
            long parsed;
            string text = raw as string;
            if (text != null && long.TryParse(text.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out parsed))
            {
                return parsed;
            }
            return null;
        }

        /// <summary>MaxMemoryPerShellMB of the microsoft.powershell plugin's ConfigXML
        /// (`<Quotas MaxMemoryPerShellMB="..."/>`), or null.</summary>
        public static object PluginQuota(string configXml)
        {
            if (configXml == null)
            {
                return null;
            }
            Match match = Regex.Match(configXml, "<(?:\\w+:)?Quotas\\b[^>]*\\bMaxMemoryPerShellMB\\s*=\\s*[\"']\\s*(\\d+)\\s*[\"']",
                                      RegexOptions.IgnoreCase);
            return match.Success ? Integer(match.Groups[1].Value) : null;
        }

        /// <summary>The WinRM shell memory quota from the registry (the smaller of the Shell
        /// quota and the microsoft.powershell plugin's; null when neither is set) and whether
        /// KB2842230 is installed (true on PowerShell 4+, which does not need it).</summary>
        public static object WinRmQuota(Args query)
        {
            object shell = Integer(RegistryOp.Value(WsMan + @"\Shell", "MaxMemoryPerShellMB"));
            object plugin = PluginQuota(RegistryOp.Value(WsMan + @"\Plugin\microsoft.powershell", "ConfigXML") as string);
            object quota = shell == null ? plugin
                : plugin == null ? shell
                : (object)Math.Min((long)shell, (long)plugin);
            Dictionary<string, object> fact = new Dictionary<string, object>();
            fact["max_memory_per_shell_mb"] = quota;
            fact["hotfix_kb2842230"] = PowerShellMajor() >= 4 || HotfixInstalled("KB2842230");
            return fact;
        }

        private static int PowerShellMajor()
        {
            string version = Core.PowerShellVersion ?? "";
            int dot = version.IndexOf('.');
            int major;
            return int.TryParse(dot < 0 ? version : version.Substring(0, dot), NumberStyles.Integer,
                                CultureInfo.InvariantCulture, out major) ? major : 0;
        }

        /// <summary>A Component Based Servicing package whose name holds the KB number
        /// (`Package_for_KB2842230~31bf3856ad364e35~amd64~~6.2.1.0`).</summary>
        public static bool HotfixInstalled(string kb)
        {
            using (RegistryKey root = RegistryOp.Open(Packages))
            {
                if (root == null)
                {
                    return false;
                }
                foreach (string sub in root.GetSubKeyNames())
                {
                    if (sub.IndexOf(kb, StringComparison.OrdinalIgnoreCase) >= 0)
                    {
                        return true;
                    }
                }
            }
            return false;
        }
    }
}
