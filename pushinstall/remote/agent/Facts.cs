// The `facts` op: every fact kind, each query answered on its own.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Net.Sockets;
using Microsoft.Win32;

namespace Pushinstall.Agent
{
    public static class Facts
    {
        private delegate object Kind(Args query);

        private static readonly Dictionary<string, Kind> Kinds = new Dictionary<string, Kind>
        {
            { "registry", RegistryOp.Fact },
            { "file", File },
            { "service", Services.Fact },
            { "product", Product },
            { "pending_reboot", PendingReboot.Fact },
            { "os", Os },
            { "disk", Disk },
            { "tcp", Tcp },
            { "ini", Probes.Ini },
            { "installer_running", Probes.InstallerRunning },
            { "winrm_quota", Probes.WinRmQuota },
        };

        private const string Uninstall = @"HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall";
        private const string CurrentVersion = @"HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion";
        /// <summary>LogonUI recreates this key when a boot has finished coming up.</summary>
        public const string AutoLogonChecked = CurrentVersion + @"\Winlogon\AutoLogonChecked";

        /// <summary>The fact kinds this core answers (tests compare them with ops.FACT_KINDS).</summary>
        public static string[] KindNames()
        {
            return new List<string>(Kinds.Keys).ToArray();
        }

        public static object Gather(Args args)
        {
            // ids are compared exactly, as in Python
            Dictionary<string, object> result = new Dictionary<string, object>(StringComparer.Ordinal);
            foreach (object item in args.List("queries"))
            {
                Dictionary<string, object> raw = item as Dictionary<string, object>;
                if (raw == null)
                {
                    throw new OpException("InvalidArgument", "a fact query is a JSON object");
                }
                Args query = new Args(raw);
                string id = query.Str("id");
                try
                {
                    string kind = query.Str("kind");
                    Kind handler;
                    if (!Kinds.TryGetValue(kind, out handler))
                    {
                        throw new OpException("InvalidArgument", "unknown fact kind '" + kind + "'");
                    }
                    result[id] = handler(query);
                }
                catch (Exception error)
                {
                    Dictionary<string, object> failed = new Dictionary<string, object>();
                    failed["error"] = Core.ErrorOf(error);
                    result[id] = failed;
                }
            }
            return result;
        }

        private static object File(Args query)
        {
            string path = query.Str("path");
            bool withHash = query.Bool("hash", true);
            Dictionary<string, object> fact = new Dictionary<string, object>();
            fact["exists"] = false;
            fact["is_directory"] = false;
            fact["size"] = null;
            fact["sha256"] = null;
            fact["modified"] = null;
            if (Directory.Exists(path))
            {
                fact["exists"] = true;
                fact["is_directory"] = true;
                fact["modified"] = Json.Time(new DirectoryInfo(path).LastWriteTimeUtc);
            }
            else if (System.IO.File.Exists(path))
            {
                FileInfo info = new FileInfo(path);
                fact["exists"] = true;
                fact["size"] = info.Length;
                fact["sha256"] = withHash ? Files.Sha256(path) : null;
                fact["modified"] = Json.Time(info.LastWriteTimeUtc);
            }
            return fact;
        }

        private static object Product(Args query)
        {
            string productId = query.Str("product_id", "");
            string name = query.Str("name", "");
            if (productId == "" && name == "")
            {
                throw new OpException("InvalidArgument", "a product query needs product_id or name");
            }
            foreach (string view in new string[] { "64", "32" })
            {
                using (RegistryKey root = RegistryOp.Open(Uninstall, view, false, false))
                {
                    if (root == null)
                    {
                        continue;
                    }
                    foreach (string sub in root.GetSubKeyNames())
                    {
                        using (RegistryKey entry = root.OpenSubKey(sub))
                        {
                            if (entry == null)
                            {
                                continue;
                            }
                            string display = entry.GetValue("DisplayName", null) as string;
                            bool byId = productId != "" && string.Equals(sub, productId, StringComparison.OrdinalIgnoreCase);
                            bool byName = name != "" && display != null && string.Equals(display, name, StringComparison.OrdinalIgnoreCase);
                            if (byId || byName)
                            {
                                Dictionary<string, object> found = new Dictionary<string, object>();
                                found["installed"] = true;
                                found["product_id"] = sub;
                                found["name"] = display;
                                found["version"] = entry.GetValue("DisplayVersion", null);
                                found["install_location"] = entry.GetValue("InstallLocation", null);
                                found["view"] = view;
                                return found;
                            }
                        }
                    }
                }
            }
            Dictionary<string, object> missing = new Dictionary<string, object>();
            missing["installed"] = false;
            missing["product_id"] = null;
            missing["name"] = null;
            missing["version"] = null;
            missing["install_location"] = null;
            missing["view"] = null;
            return missing;
        }

        private static object Os(Args query)
        {
            object major = RegistryOp.Value(CurrentVersion, "CurrentMajorVersionNumber");
            object minor = RegistryOp.Value(CurrentVersion, "CurrentMinorVersionNumber");
            string build = Convert.ToString(RegistryOp.Value(CurrentVersion, "CurrentBuildNumber")) ?? "";
            string version = major != null && minor != null
                ? major + "." + minor
                : Convert.ToString(RegistryOp.Value(CurrentVersion, "CurrentVersion")) ?? "";
            int buildNumber;
            Dictionary<string, object> fact = new Dictionary<string, object>();
            fact["hostname"] = Environment.MachineName;
            fact["caption"] = (Convert.ToString(RegistryOp.Value(CurrentVersion, "ProductName")) ?? "").Trim();
            fact["version"] = build == "" ? version : version + "." + build;
            fact["build"] = int.TryParse(build, out buildNumber) ? (object)buildNumber : null;
            // not Win32_OperatingSystem.OSArchitecture: that one is localized ("64 Bits")
            fact["architecture"] = Environment.Is64BitOperatingSystem ? "64-bit" : "32-bit";
            fact["powershell_version"] = Core.PowerShellVersion;
            fact["last_boot_time"] = Json.Time(Core.Windows.BootTime());
            fact["boot_finished"] = RegistryOp.KeyExists(AutoLogonChecked);
            return fact;
        }

        private static object Disk(Args query)
        {
            string letter = query.Str("drive").TrimEnd('\\').TrimEnd(':');
            if (letter.Length != 1)
            {
                throw new OpException("InvalidArgument", "drive is a drive letter like \"C:\"");
            }
            Dictionary<string, object> fact = new Dictionary<string, object>();
            DriveInfo info = Core.Windows.Drive(letter);
            bool ready = info != null && info.IsReady;
            fact["exists"] = ready;
            fact["free_bytes"] = ready ? (object)info.AvailableFreeSpace : null;
            fact["total_bytes"] = ready ? (object)info.TotalSize : null;
            return fact;
        }

        private static object Tcp(Args query)
        {
            string host = query.Str("host");
            int port = query.Int("port", 0);
            int timeoutMs = query.Int("timeout_ms", 3000);
            Stopwatch watch = Stopwatch.StartNew();
            Dictionary<string, object> fact = new Dictionary<string, object>();
            fact["reachable"] = false;
            fact["error"] = null;
            using (TcpClient client = new TcpClient())
            {
                try
                {
                    IAsyncResult pending = client.BeginConnect(host, port, null, null);
                    if (pending.AsyncWaitHandle.WaitOne(timeoutMs, false))
                    {
                        client.EndConnect(pending);
                        fact["reachable"] = true;
                    }
                    else
                    {
                        fact["error"] = "no answer within " + timeoutMs + " ms";
                    }
                }
                catch (Exception error)
                {
                    Exception inner = error;
                    while (inner.InnerException != null)
                    {
                        inner = inner.InnerException;
                    }
                    fact["error"] = inner.Message;
                }
            }
            fact["elapsed_ms"] = (int)watch.ElapsedMilliseconds;
            return fact;
        }
    }
}
