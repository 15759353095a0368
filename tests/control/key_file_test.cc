#include "control/key_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "control/authorized_clients.h"
#include "crypto/aead.h"

namespace triglav::ctl {
namespace {

struct KeyFileTest : ::testing::Test {
  void SetUp() override {
    ASSERT_TRUE(crypto::init());
    char tmpl[] = "/tmp/triglav-keyfile-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir); }
  std::string write(const std::string& name, const std::string& text, mode_t mode = 0600) {
    std::ofstream(dir + "/" + name) << text;
    chmod((dir + "/" + name).c_str(), mode);
    return dir + "/" + name;
  }
  std::string error_of(const std::string& path) {
    try {
      load_key_file(path);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "";
  }
  std::string dir;
};

TEST_F(KeyFileTest, SaveLoadRoundTripWithMode0600) {
  ServerKeyFile kf;
  kf.key = crypto::KeyPair::generate();
  kf.addresses = {"192.0.2.1:7443", "[2001:db8::1]:7443"};
  const std::string path = dir + "/server.key";
  save_key_file(path, kf);
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ServerKeyFile back = load_key_file(path);
  EXPECT_EQ(back.key.pub, kf.key.pub);
  EXPECT_EQ(back.addresses, kf.addresses);
  EXPECT_THROW(save_key_file(path, kf), std::runtime_error);  // never overwrites
}

TEST_F(KeyFileTest, RefusesAFileOthersCanRead) {
  ServerKeyFile kf;
  kf.key = crypto::KeyPair::generate();
  const std::string path = dir + "/server.key";
  save_key_file(path, kf);
  for (mode_t m : {0640, 0604, 0660, 0602}) {
    chmod(path.c_str(), m);
    const std::string e = error_of(path);
    EXPECT_NE(e.find("readable or writable by group or others"), std::string::npos) << e;
    EXPECT_NE(e.find("chmod 600 " + path), std::string::npos) << e;
  }
  chmod(path.c_str(), 0400);  // read-only for its owner is fine
  EXPECT_EQ(error_of(path), "");
}

TEST_F(KeyFileTest, ErrorsNameTheProblem) {
  EXPECT_NE(error_of(dir + "/missing").find("cannot read key file"), std::string::npos);
  EXPECT_NE(error_of(write("a", "private_key = \n")).find("line 1"), std::string::npos);
  EXPECT_NE(error_of(write("b", "addresses = []\n")).find("missing string 'private_key'"),
            std::string::npos);
  EXPECT_NE(error_of(write("c", "private_key = \"abc\"\n")).find("not 32 bytes"), std::string::npos);
  EXPECT_NE(error_of(write("d", "private_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n"
                                "colour = 1\n"))
                .find("unknown key 'colour'"),
            std::string::npos);
  EXPECT_NE(error_of(write("e", "private_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n"
                                "addresses = \"1.2.3.4:5\"\n"))
                .find("array of strings"),
            std::string::npos);
  EXPECT_NE(error_of(write("f", "private_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n"
                                "addresses = [1]\n"))
                .find("must hold strings"),
            std::string::npos);
  EXPECT_EQ(error_of(write("g", "private_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n")), "");
}

std::string auth_error(const std::string& path) {
  try {
    AuthorizedClients::load(path);
  } catch (const std::exception& e) {
    return e.what();
  }
  return {};
}

TEST_F(KeyFileTest, AuthorizedClientsFromAFile) {
  const crypto::ClientKey a = crypto::ClientKey::generate(), b = crypto::ClientKey::generate();
  const std::string f = write("clients", "# our clients\n" + crypto::encode_client_key(a) + " alice\n\n  " +
                                             crypto::encode_client_key(b) + "   # no name\n");
  const auto list = AuthorizedClients::load(f);
  EXPECT_EQ(list.size(), 2u);
  ASSERT_NE(list.find(a.id), nullptr);
  EXPECT_EQ(list.find(a.id)->name, "alice");
  EXPECT_TRUE(std::ranges::equal(list.find(a.id)->key.psk.span(), a.psk.span()));
  ASSERT_NE(list.find(b.id), nullptr);
  EXPECT_EQ(list.find(b.id)->name, crypto::client_key_label(b.id));
  EXPECT_EQ(list.find(crypto::ClientKey::generate().id), nullptr);
}

TEST_F(KeyFileTest, AuthorizedClientsFromADirectory) {
  std::filesystem::create_directory(dir + "/d");
  const crypto::ClientKey a = crypto::ClientKey::generate(), b = crypto::ClientKey::generate();
  write("d/alice", crypto::encode_client_key(a) + "\n");
  write("d/bob", crypto::encode_client_key(b) + " robert\n");
  write("d/.hidden", "not a key\n");
  write("d/alice~", "not a key\n");
  const std::string before = AuthorizedClients::stamp(dir + "/d");
  const auto list = AuthorizedClients::load(dir + "/d");
  EXPECT_EQ(list.size(), 2u);
  EXPECT_EQ(list.find(a.id)->name, "alice");
  EXPECT_EQ(list.find(b.id)->name, "robert");
  // Revoking a key (removing its file) changes the stamp and the list.
  std::filesystem::remove(dir + "/d/bob");
  EXPECT_NE(AuthorizedClients::stamp(dir + "/d"), before);
  EXPECT_EQ(AuthorizedClients::load(dir + "/d").find(b.id), nullptr);
  EXPECT_EQ(AuthorizedClients::stamp(dir + "/missing"), "-");
}

TEST_F(KeyFileTest, ClientKeyFileRoundTrip) {
  const crypto::ClientKey k = crypto::ClientKey::generate();
  save_client_key(dir + "/me.key", k, "laptop");
  struct stat st{};
  ASSERT_EQ(stat((dir + "/me.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(load_client_key(dir + "/me.key").id, k.id);
  // The same file authorises it on the server.
  EXPECT_EQ(AuthorizedClients::load(dir + "/me.key").find(k.id)->name, "laptop");
  EXPECT_THROW(save_client_key(dir + "/me.key", k, ""), std::runtime_error);
  write("two.key", crypto::encode_client_key(k) + "\n" + crypto::encode_client_key(crypto::ClientKey::generate()) + "\n");
  EXPECT_THROW(load_client_key(dir + "/two.key"), std::runtime_error);
}

TEST_F(KeyFileTest, AuthorizedClientsErrorsNameFileAndLine) {
  const crypto::ClientKey a = crypto::ClientKey::generate();
  const std::string k = crypto::encode_client_key(a);
  std::string e = auth_error(write("bad", "# x\n" + k + "\ntg1_AAAA bob\n"));
  EXPECT_NE(e.find("bad line 3"), std::string::npos) << e;
  EXPECT_NE(e.find("tgc1_"), std::string::npos) << e;
  e = auth_error(write("dup", k + " a\n" + k + " b\n"));
  EXPECT_NE(e.find("dup line 2"), std::string::npos) << e;
  EXPECT_NE(e.find("'a' again"), std::string::npos) << e;
  e = auth_error(write("open", k + "\n", 0644));
  EXPECT_NE(e.find("chmod 600"), std::string::npos) << e;
  e = auth_error(dir + "/nothing");
  EXPECT_NE(e.find("no such file"), std::string::npos) << e;
}

}  // namespace
}  // namespace triglav::ctl
